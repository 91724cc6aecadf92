//! The flusher on a real store and queue: a commit that fails is tried again, one that keeps
//! failing halts once and lets its jobs go, and a failed request retries or fails its item.

use std::sync::Arc;

use tokio::sync::{Mutex, mpsc};

use super::Flusher;
use crate::failpoint::FailAction;
use crate::halt::HaltKind;
use crate::queue::{JobFailure, Lane};
use crate::store::ItemState;
use crate::test_support::{anime, id};
use crate::upstream::{BatchAnswer, UpstreamError};
use crate::workers::request::{FetchRequest, FlushWork, Reply};
use crate::workers::rig::{Rig, answered, request};

fn flusher(rig: &Rig) -> Flusher {
    let (_tx, rx) = mpsc::unbounded_channel();
    Flusher::new(rig.parts.clone(), Arc::new(Mutex::new(rx)))
}

/// Anime 1 answered, with a sequel 2 the walk queues next.
fn answer_for(request: FetchRequest) -> FlushWork {
    FlushWork::Fetched {
        outcome: Ok(BatchAnswer {
            found: vec![anime(1, &[("SEQUEL", 2, "ANIME")])],
            not_found: Vec::new(),
            malformed: Vec::new(),
            walked: Vec::new(),
        }),
        requests: vec![request],
        landed: None,
    }
}

#[tokio::test]
async fn a_commit_that_fails_a_few_times_is_tried_again_and_lands_whole() {
    let rig = Rig::new().await;
    let (import_id, job) = rig.import(1).await;
    rig.parts
        .failpoints
        .arm("flusher.commit", FailAction::Error, Some(3));
    let (r, answer) = request(job, Lane::Background);
    flusher(&rig).flush(vec![answer_for(r)]).await;

    assert_eq!(rig.parts.failpoints.fired("flusher.commit"), 3);
    assert!(
        rig.parts.halt.halted().is_none(),
        "three failures are not a halt"
    );
    assert!(
        matches!(answered(answer), Ok(())),
        "the job is answered once committed"
    );
    assert_eq!(rig.item(import_id, 1).await.state, ItemState::Done);
    assert_eq!(
        rig.item(import_id, 2).await.state,
        ItemState::Queued,
        "the next level is queued in the same commit"
    );
    assert_eq!(
        rig.queued_jobs().await,
        1,
        "and its job pushed before the answer"
    );
}

#[tokio::test]
async fn a_commit_that_keeps_failing_halts_once_and_lets_its_jobs_go_to_a_new_round() {
    let rig = Rig::new().await;
    let (import_id, job) = rig.import(1).await;
    rig.parts
        .failpoints
        .arm("flusher.commit", FailAction::Error, None);
    let (r, answer) = request(job, Lane::Background);
    flusher(&rig).flush(vec![answer_for(r)]).await;

    assert_eq!(
        rig.parts.failpoints.fired("flusher.commit"),
        10,
        "ten tries, then no more"
    );
    let halt = rig.parts.halt.halted().expect("the pipeline halts");
    assert_eq!(halt.kind, HaltKind::Broken);
    assert!(halt.message.contains("kept failing"), "{halt}");
    assert!(halt.message.contains("Nothing stored was lost"), "{halt}");
    assert!(
        matches!(answered(answer), Ok(())),
        "the job lets go without spending an attempt"
    );
    let item = rig.item(import_id, 1).await;
    assert_eq!((item.state, item.round), (ItemState::Queued, 1));
    assert!(
        rig.parts.store.anime(id(1)).await.unwrap().is_none(),
        "nothing of the failed flush was written"
    );
}

#[tokio::test]
async fn a_failed_request_retries_its_job_until_the_last_attempt_then_fails_the_item() {
    let rig = Rig::new().await;
    let (import_id, job) = rig.import(1).await;
    // The request's answer was a 502.
    let failed = |request| FlushWork::Fetched {
        outcome: Err(UpstreamError::Transient {
            reason: "HTTP 502".into(),
        }),
        requests: vec![request],
        landed: None,
    };
    let mut flusher = flusher(&rig);

    let (r, answer) = request(job.clone(), Lane::Background);
    flusher.flush(vec![failed(r)]).await;
    assert!(matches!(answered(answer), Err(JobFailure::Retry(_))));
    assert_eq!(rig.item(import_id, 1).await.state, ItemState::Queued);

    let (mut r, answer) = request(job, Lane::Background);
    r.last_attempt = true;
    flusher.flush(vec![failed(r)]).await;
    let reply: Reply = answered(answer);
    assert!(
        matches!(reply, Err(JobFailure::Abort(ref reason)) if reason.contains("502")),
        "{reply:?}"
    );
    assert_eq!(rig.item(import_id, 1).await.state, ItemState::Failed);
}
