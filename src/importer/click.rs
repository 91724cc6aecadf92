//! Open-on-click: the anime the user just clicked, with its relations, from the store if it
//! is fresh (detailed tier), else fetched in the interactive lane, ahead of every import.

use tokio::sync::broadcast;

use super::Importer;
use crate::anime::AnimeId;
use crate::error::Error;
use crate::queue::{FetchJob, Lane};
use crate::store::{StoredAnime, fresh_since};
use crate::workers::NoticeOutcome;

impl Importer {
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
        queue.push(Lane::Interactive, &[FetchJob::open(id)]).await?;
        loop {
            let notice = tokio::select! {
                notice = notices.recv() => notice,
                halt = self.until_halted() => return Err(Error::Halted(halt)),
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
