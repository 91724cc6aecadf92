//! Open-on-click: the anime the user just clicked, with its relations, from the store if it
//! is fresh (detailed tier), else fetched in the interactive lane, ahead of every import.

use std::time::Duration;

use tokio::sync::broadcast;

use super::Importer;
use crate::anime::AnimeId;
use crate::clock::fresh_since;
use crate::error::Error;
use crate::queue::{FetchJob, Lane};
use crate::store::StoredAnime;
use crate::workers::NoticeOutcome;

/// How often a waiting click looks at the store for an answer another process wrote.
const LOOK_EVERY: Duration = Duration::from_millis(100);
/// Clocks of different machines may differ this much.
const CLOCK_SLACK_MS: i64 = 30_000;

impl Importer {
    /// While AniList is down and its next probe is not due, a click is answered from the
    /// store (marked stale) or told so, instead of waiting out a timeout.
    async fn answer_while_down(
        &self,
        stored: Option<StoredAnime>,
    ) -> Option<Result<StoredAnime, Error>> {
        let upstream = self.upstream().await.ok()?;
        if !upstream.is_down() || upstream.retry_at_ms.is_none() {
            return None;
        }
        Some(match stored {
            Some(mut anime) => {
                anime.stale = Some(upstream);
                Ok(anime)
            }
            None => Err(Error::UpstreamDown(upstream)),
        })
    }

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
    ///
    /// While AniList is known to be down (unreachable, refusing, not AniList) it answers at
    /// once: the stored copy, however old, with [`StoredAnime::stale`] saying why, or
    /// [`Error::UpstreamDown`] if the anime was never stored.
    pub async fn open_anime(&self, id: AnimeId) -> Result<StoredAnime, Error> {
        let detailed = self.inner.settings.detailed_ttl;
        let stored = self.inner.store.anime(id).await?;
        if let Some(anime) = &stored
            && anime.fetched_at_ms >= fresh_since(self.now(), detailed)
        {
            return Ok(anime.clone());
        }
        if let Some(answer) = self.answer_while_down(stored.clone()).await {
            return answer;
        }
        // Down with its probe due: this click may be the probe, and waits for its own answer.
        let was_down = self.upstream().await.is_ok_and(|u| u.is_down());
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
                    // Another process (or an import's flight) found AniList down meanwhile.
                    if !was_down
                        && let Some(answer) = self.answer_while_down(stored.clone()).await
                    {
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
                        NoticeOutcome::Failed(reason) => {
                            // AniList turned out to be down: the stored copy, marked stale,
                            // is better than an error.
                            match self.answer_while_down(stored.clone()).await {
                                Some(Ok(anime)) => Ok(anime),
                                _ => Err(Error::FetchFailed { id, reason }),
                            }
                        }
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
