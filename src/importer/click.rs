//! Open-on-click: the anime the user just clicked, with its relations, from the store if it
//! is fresh (detailed tier), else fetched in the interactive lane, ahead of every import.

use std::time::Duration;

use tokio::sync::broadcast;

use super::Importer;
use crate::anime::AnimeId;
use crate::error::Error;
use crate::queue::{FetchJob, Lane};
use crate::store::{StoredAnime, fresh_since};
use crate::workers::NoticeOutcome;

/// How often a waiting click looks at the store for an answer another process wrote.
const LOOK_EVERY: Duration = Duration::from_millis(100);
/// Clocks of different machines may differ this much.
const CLOCK_SLACK_MS: i64 = 30_000;

impl Importer {
    /// The clicked anime if it was stored (or found missing) since the click, by any process.
    async fn landed_since(
        &self,
        id: AnimeId,
        clicked_at: i64,
    ) -> Result<Option<Result<StoredAnime, Error>>, Error> {
        let since = clicked_at - CLOCK_SLACK_MS;
        if let Some(anime) = self.inner.store.anime(id).await?
            && anime.fetched_at_ms >= since
        {
            return Ok(Some(Ok(anime)));
        }
        if self
            .inner
            .store
            .missing_since(id)
            .await?
            .is_some_and(|at| at >= since)
        {
            return Ok(Some(Err(Error::NotFound(id))));
        }
        Ok(None)
    }

    /// The anime the user just clicked, with its relations: from the store if it is fresh,
    /// else fetched in the interactive lane (about one round trip, even during a big import).
    /// Needs the workers running in this process ([`Importer::start`]).
    pub async fn open_anime(&self, id: AnimeId) -> Result<StoredAnime, Error> {
        let detailed = self.inner.settings.detailed_ttl;
        if let Some(anime) = self.inner.store.anime(id).await?
            && anime.fetched_at_ms >= fresh_since(self.now(), detailed)
        {
            return Ok(anime);
        }
        if !self.is_running().await {
            return Err(match self.queue_owner() {
                super::QueueOwner::OtherProcess { pid } => Error::NotOwner { pid },
                _ => Error::NotRunning,
            });
        }
        let Some(queue) = self.parts_for_click() else {
            return Err(Error::NotRunning);
        };
        let mut notices = self.inner.notices.subscribe();
        let clicked_at = self.now();
        queue.push(Lane::Interactive, &[FetchJob::open(id)]).await?;
        // Another process may take the job (a shared database): the store says when it lands.
        let mut look = tokio::time::interval(LOOK_EVERY);
        loop {
            let notice = tokio::select! {
                notice = notices.recv() => notice,
                halt = self.until_halted() => return Err(Error::Halted(halt)),
                _ = look.tick() => {
                    if let Some(answer) = self.landed_since(id, clicked_at).await? {
                        return answer;
                    }
                    continue;
                }
            };
            match notice {
                Ok(notice) if notice.anime_id == id => {
                    return match notice.outcome {
                        NoticeOutcome::Stored => {
                            self.inner.store.anime(id).await?.ok_or(Error::Stopped(id))
                        }
                        NoticeOutcome::NotFound => Err(Error::NotFound(id)),
                        NoticeOutcome::Failed(reason) => Err(Error::FetchFailed { id, reason }),
                    };
                }
                Ok(_) => {}
                // Missed notices: the store has the answer if it was ours.
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    if let Some(anime) = self.inner.store.anime(id).await?
                        && anime.fetched_at_ms >= fresh_since(self.now(), detailed)
                    {
                        return Ok(anime);
                    }
                }
                Err(broadcast::error::RecvError::Closed) => return Err(Error::Stopped(id)),
            }
        }
    }
}
