//! The batcher's triage and its stop, on a real store and queue: which jobs cost a request,
//! which are settled from the store, and what becomes of the jobs still waiting at a stop.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, mpsc};

use super::Batcher;
use crate::producer::{FlushBatch, commit_flush, requeue};
use crate::queue::{FetchJob, JobFailure, Lane};
use crate::store::{ItemOutcome, ItemResult, ItemState, QueuedItem};
use crate::test_support::{anime, id};
use crate::workers::request::{FlushWork, Settlement};
use crate::workers::rig::{Rig, answered, request};

/// A batcher on the rig, with the flusher's end of its channel.
fn batcher(rig: &Rig) -> (Batcher, mpsc::UnboundedReceiver<FlushWork>) {
    let (_requests_tx, requests) = mpsc::unbounded_channel();
    let (flusher, flushed) = mpsc::unbounded_channel();
    let batcher = Batcher::new(rig.parts.clone(), Arc::new(Mutex::new(requests)), flusher);
    (batcher, flushed)
}

async fn flush(rig: &Rig, batch: FlushBatch) {
    let now = rig.parts.clock.now_ms();
    commit_flush(&rig.parts.store, &batch, now, now)
        .await
        .unwrap();
}

#[tokio::test]
async fn triage_answers_settles_or_holds_each_job_and_only_the_rest_cost_a_request() {
    let rig = Rig::new().await;
    let (settled, settled_job) = rig.import(1).await;
    let (_, stale_job) = rig.import(2).await;
    let (_, stored_job) = rig.import(3).await;
    let (_, missing_job) = rig.import(4).await;
    let (_, dying_job) = rig.import(5).await;
    let (plain, plain_job) = rig.import(6).await;
    let (_, flying_job) = rig.import(8).await;

    // Item 1 is done; item 2 went to a newer round; anime 3 was stored and anime 4 found
    // missing by another fetch after their items were queued; item 5 was sent too often.
    rig.clock.advance(Duration::from_secs(1));
    flush(
        &rig,
        FlushBatch {
            fetched: vec![anime(1, &[]), anime(3, &[])],
            carried: vec![],
            not_found: vec![id(4)],
            items: vec![ItemResult {
                import_id: settled,
                anime_id: id(1),
                outcome: ItemOutcome::Done,
            }],
        },
    )
    .await;
    let stale_item = QueuedItem {
        import_id: stale_job.import_id.unwrap(),
        anime_id: id(2),
        depth: 0,
        round: 0,
    };
    requeue(&rig.parts.store, &[stale_item], rig.parts.clock.now_ms())
        .await
        .unwrap();
    let dying_key = (dying_job.import_id.unwrap(), id(5));
    rig.parts
        .store
        .count_fetches(&[dying_key], i32::try_from(rig.parts.max_fetches).unwrap())
        .await
        .unwrap();

    let (mut batcher, mut flushed) = batcher(&rig);
    batcher.in_flight.insert(id(8));
    let unknown_job = FetchJob {
        anime_id: id(99),
        ..plain_job.clone()
    };
    let click = FetchJob::open(id(7));
    let mut answers = Vec::new();
    for (job, lane) in [
        (settled_job, Lane::Background),
        (stale_job, Lane::Background),
        (stored_job, Lane::Background),
        (missing_job, Lane::Background),
        (dying_job, Lane::Background),
        (plain_job, Lane::Background),
        (flying_job, Lane::Background),
        (unknown_job, Lane::Background),
        (click, Lane::Interactive),
    ] {
        let (r, answer) = request(job, lane);
        batcher.inbox.push(r);
        answers.push(answer);
    }
    batcher.triage().await;

    let mut answers = answers.into_iter();
    assert!(
        matches!(answered(answers.next().unwrap()), Ok(())),
        "a done item's job is answered"
    );
    assert!(
        matches!(answered(answers.next().unwrap()), Ok(())),
        "an older round's job is answered"
    );
    // Stored, missing and dying items go to the flusher, in one piece of work.
    let Ok(FlushWork::Settle(settle)) = flushed.try_recv() else {
        panic!("the settled jobs go to the flusher");
    };
    let verdicts: Vec<(i64, Settlement)> = settle
        .iter()
        .map(|(r, s)| (i64::from(r.job.anime_id.get()), s.clone()))
        .collect();
    assert_eq!(verdicts[0], (3, Settlement::FromStore));
    assert_eq!(verdicts[1], (4, Settlement::NotFound));
    assert_eq!(verdicts[2].0, 5);
    assert!(
        matches!(&verdicts[2].1, Settlement::Failed(reason) if reason.contains("3 times")),
        "{:?}",
        verdicts[2]
    );
    assert_eq!(verdicts.len(), 3);
    let mut rest: Vec<_> = answers.collect();
    let unknown = rest.remove(5);
    assert!(
        matches!(answered(unknown), Err(JobFailure::Abort(reason)) if reason.contains("no item for anime 99")),
    );
    for waiting in &mut rest {
        assert!(
            waiting.try_recv().is_err(),
            "jobs that still need AniList wait"
        );
    }
    // Only the plain item and the click cost a request; the id in flight waits for its flight.
    let (ids, requests) = batcher.pending.take(50);
    assert_eq!(ids, vec![id(7), id(6)], "the click goes first");
    assert_eq!(requests.len(), 2);
    assert_eq!(batcher.on_flight.get(&id(8)).map(Vec::len), Some(1));
    assert_eq!(rig.item(plain, 6).await.state, ItemState::Queued);
}

#[tokio::test]
async fn a_store_that_cannot_triage_sends_every_job_rather_than_losing_one() {
    let rig = Rig::new().await;
    let (_, job) = rig.import(1).await;
    let (mut batcher, mut flushed) = batcher(&rig);
    let (r, mut answer) = request(job, Lane::Background);
    batcher.inbox.push(r);
    rig.parts.store.close().await;
    batcher.triage().await;
    assert!(answer.try_recv().is_err(), "the job waits for its request");
    assert!(flushed.try_recv().is_err(), "nothing is settled blind");
    assert_eq!(batcher.pending.take(50).0, vec![id(1)]);
}

#[tokio::test]
async fn a_stop_hands_every_waiting_job_to_a_new_round_without_spending_an_attempt() {
    let rig = Rig::new().await;
    let (pending_import, pending_job) = rig.import(1).await;
    let (flying_import, flying_job) = rig.import(2).await;
    let (inbox_import, inbox_job) = rig.import(3).await;
    let before = rig.queued_jobs().await;

    let (mut batcher, _flushed) = batcher(&rig);
    let (a, a_answer) = request(pending_job, Lane::Background);
    batcher.pending.add(a);
    let (b, b_answer) = request(flying_job, Lane::Background);
    batcher.on_flight.entry(id(2)).or_default().push(b);
    let (c, c_answer) = request(inbox_job, Lane::Background);
    batcher.inbox.push(c);
    let (late_tx, mut late_rx) = mpsc::unbounded_channel();
    let (d, d_answer) = request(FetchJob::open(id(4)), Lane::Interactive);
    late_tx.send(d).unwrap();
    drop(late_tx);
    batcher.stop(&mut late_rx).await;

    for answer in [a_answer, b_answer, c_answer, d_answer] {
        assert!(
            matches!(answered(answer), Ok(())),
            "a released job returns as done"
        );
    }
    for (import_id, anime) in [(pending_import, 1), (flying_import, 2), (inbox_import, 3)] {
        let item = rig.item(import_id, anime).await;
        assert_eq!(
            (item.state, item.round),
            (ItemState::Queued, 1),
            "item {anime} stays queued under a new round"
        );
    }
    assert_eq!(
        rig.queued_jobs().await,
        before + 3,
        "each released item has a new job in the queue"
    );
}
