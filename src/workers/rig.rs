//! A pipeline's parts on a real SQLite store and a real embedded queue, for the workers' own
//! tests. No request leaves: AniList's address is a loopback port nobody listens on.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, oneshot};
use tokio_util::sync::CancellationToken;

use super::parts::{CommitBackoff, PipelineParts};
use super::request::{FetchRequest, Reply};
use crate::cache::ReadCache;
use crate::clock::{Clock, ManualClock};
use crate::config::Settings;
use crate::events::EventBus;
use crate::failpoint::FailPoints;
use crate::halt::HaltSwitch;
use crate::producer::{ImportOptions, Push, create_import};
use crate::queue::{FetchJob, Lane};
use crate::store::ItemTriage;
use crate::test_support::id;
use crate::upstream::{AniListClient, ClientConfig, RateBudget, StoreLedger};

/// When the rig's clock starts (Unix ms).
pub(super) const START_MS: i64 = 1_800_000_000_000;

pub(super) struct Rig {
    pub parts: PipelineParts,
    pub clock: ManualClock,
    _dir: tempfile::TempDir,
}

impl Rig {
    pub(super) async fn new() -> Self {
        let (dir, store) = crate::store::testing::sqlite_store().await;
        let queue = crate::queue::tests::open_embedded(&dir.path().join("queue.redb"), 5)
            .await
            .unwrap();
        let clock = ManualClock::at(START_MS);
        let shared: Arc<dyn Clock> = Arc::new(clock.clone());
        let settings = Settings::default();
        let ledger = Arc::new(StoreLedger(store.clone()));
        let budget = Arc::new(RateBudget::new(settings.budget(), ledger, shared.clone()));
        let client = AniListClient::new(
            ClientConfig {
                endpoint: "http://127.0.0.1:9/".into(),
                ..settings.client()
            },
            budget,
        )
        .unwrap();
        let (notices, _) = broadcast::channel(64);
        let cache = ReadCache::new(
            0,
            Duration::ZERO,
            Duration::ZERO,
            Duration::ZERO,
            shared.clone(),
        );
        let parts = PipelineParts {
            store,
            queue,
            client,
            events: EventBus::default(),
            notices,
            failpoints: FailPoints::new(),
            clock: shared,
            cache: Arc::new(cache),
            fresh_for: Duration::from_secs(3600),
            batch_window: Duration::from_millis(5),
            commit_backoff: CommitBackoff {
                first: Duration::from_millis(1),
                max: Duration::from_millis(2),
            },
            max_fetches: 3,
            retention: Duration::from_secs(86_400),
            shutdown: CancellationToken::new(),
            halt: HaltSwitch::default(),
        };
        Self {
            parts,
            clock,
            _dir: dir,
        }
    }

    /// A new import of `root`, queued now: its id and the job that fetches its root.
    pub(super) async fn import(&self, root: i64) -> (i64, FetchJob) {
        let now = self.clock.now_ms();
        let (import_id, queued) = create_import(
            &self.parts.store,
            id(root),
            &ImportOptions::default().rules(),
            now,
            now,
            Push::Caller,
        )
        .await
        .unwrap();
        assert_eq!(queued.len(), 1, "a fresh root is one queued item");
        (import_id, FetchJob::from(&queued[0]))
    }

    /// What the store says of one item.
    pub(super) async fn item(&self, import_id: i64, anime: i64) -> ItemTriage {
        let key = (import_id, id(anime));
        let mut states = self.parts.store.triage(&[key]).await.unwrap();
        states.remove(&key).expect("the item exists")
    }

    /// Background jobs waiting in the queue.
    pub(super) async fn queued_jobs(&self) -> u64 {
        self.parts.queue.depth().await.unwrap().background.pending
    }
}

/// A job's ask, and where its answer arrives.
pub(super) fn request(job: FetchJob, lane: Lane) -> (FetchRequest, oneshot::Receiver<Reply>) {
    let (reply, answer) = oneshot::channel();
    let request = FetchRequest {
        job,
        lane,
        last_attempt: false,
        reply,
    };
    (request, answer)
}

/// The answer a job got, which must already be there.
pub(super) fn answered(mut answer: oneshot::Receiver<Reply>) -> Reply {
    answer
        .try_recv()
        .expect("the job was answered at once, not left waiting")
}
