//! The bad-day mode in force: set and cleared through the handle or `/admin/mode`, read per
//! request, ended by itself after an optional length; callers can wait for the port to follow.

use std::io;
use std::time::{Duration, Instant};

use super::App;
use crate::mode::Mode;
use crate::rate::after;

/// The port's state, as the serving loop reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    /// Accepting connections.
    Up,
    /// The socket is closed; open connections are finishing their last request.
    Closing,
    /// Closed, no connection left: a connect is refused.
    Down,
    /// Binding the port again failed (another process took it?).
    Failed(io::ErrorKind, String),
}

/// A mode and when it ends by itself (`None`: when cleared).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModeState {
    pub mode: Mode,
    pub until: Option<Instant>,
}

/// Whether this state wants the port closed (an expired one is reopened by the serving loop).
pub fn wants_offline(state: &Option<ModeState>) -> bool {
    matches!(state, Some(s) if s.mode == Mode::Offline)
}

impl App {
    /// `None` clears the mode.
    pub fn set_mode(&self, mode: Option<Mode>, length: Option<Duration>) {
        let until = length.map(|l| after(Instant::now(), l));
        self.mode
            .send_replace(mode.map(|mode| ModeState { mode, until }));
    }

    /// The mode answering a request that arrives at `now`.
    pub fn mode_at(&self, now: Instant) -> Option<ModeState> {
        (*self.mode.borrow()).filter(|s| s.until.is_none_or(|until| now < until))
    }

    pub fn stopping(&self) -> bool {
        *self.shutdown.borrow()
    }

    async fn stopped(&self) {
        let mut stop = self.shutdown.clone();
        let _ = stop.wait_for(|s| *s).await;
    }

    /// Resolves when held requests must let go: the server stops or goes offline.
    pub async fn interrupted(&self) {
        let mut mode = self.mode.subscribe();
        tokio::select! {
            _ = mode.wait_for(wants_offline) => {}
            _ = self.stopped() => {}
        }
    }

    /// Resolves when a stall that began under `began` must end: the mode changed or ran out,
    /// the server goes offline or stops.
    pub async fn stall_over(&self, began: ModeState) {
        let mut mode = self.mode.subscribe();
        let runs_out = async {
            match began.until {
                Some(until) => tokio::time::sleep_until(until.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = mode.wait_for(|m| *m != Some(began)) => {}
            _ = runs_out => {}
            _ = self.stopped() => {}
        }
    }

    /// Waits while the mode is `Offline`, clearing a timed one when it runs out.
    pub async fn until_back_online(&self) {
        let mut rx = self.mode.subscribe();
        loop {
            let state = *rx.borrow_and_update();
            let until = match state {
                Some(ModeState {
                    mode: Mode::Offline,
                    until,
                }) => until,
                _ => return,
            };
            let runs_out = async {
                match until {
                    Some(until) => tokio::time::sleep_until(until.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = runs_out => {
                    self.mode.send_if_modified(|m| {
                        let same = *m == state;
                        if same {
                            *m = None;
                        }
                        same
                    });
                    return;
                }
                changed = rx.changed() => if changed.is_err() { return },
                _ = self.stopped() => return,
            }
        }
    }

    /// Waits until the port is as the mode wants it: open, or closed with every connection
    /// gone (`fully`) or at least no longer accepting (`!fully`, for a request served on one
    /// of those connections, which cannot wait for itself).
    pub async fn port_settled(&self, fully: bool) -> io::Result<()> {
        let mut link = self.link.subscribe();
        let mut mode = self.mode.subscribe();
        loop {
            let offline = wants_offline(&mode.borrow_and_update());
            match (&*link.borrow_and_update(), offline) {
                (Link::Up, false) | (Link::Down, true) => return Ok(()),
                (Link::Closing, true) if !fully => return Ok(()),
                (Link::Failed(kind, message), false) => {
                    return Err(io::Error::new(*kind, message.clone()));
                }
                _ => {}
            }
            tokio::select! {
                _ = link.changed() => {}
                _ = mode.changed() => {}
                _ = self.stopped() => return Ok(()),
            }
        }
    }
}
