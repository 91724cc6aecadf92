//! `franchise doctor`: the command to run when something is wrong with AniList. It checks
//! the way there step by step and ends with one verdict line; exit 0 only when all is well.

use std::process::ExitCode;

use clap::Args;
use franchise::{Settings, Verdict};

use crate::out;

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub async fn run(settings: Settings, args: DoctorArgs) -> anyhow::Result<ExitCode> {
    let importer = super::importer(settings)?.without_queue().open().await?;
    let checkup = importer.doctor().await;
    importer.close().await;
    if args.json {
        out!("{}", serde_json::to_string_pretty(&checkup)?);
    } else {
        out!("endpoint    {}", checkup.endpoint);
        out!("referer     {}", checkup.referer);
        out!("user-agent  {}", checkup.user_agent);
        for check in &checkup.checks {
            let mark = match check.verdict {
                Verdict::Pass => "ok  ",
                Verdict::Fail => "FAIL",
                Verdict::Skip => "--  ",
            };
            out!("{mark} {:<11} {}", check.name, check.detail);
        }
        out!("{}", checkup.verdict);
    }
    Ok(if checkup.healthy {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
