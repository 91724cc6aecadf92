//! `fake-anilist`: serves a generated or recorded AniList world on loopback until Ctrl-C.
//! Every knob of the library is a flag; see `fake-anilist --help`.

mod cli;

use anyhow::Context;
use clap::Parser;
use fake_anilist::{FakeAniList, World};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = cli::Args::parse();
    let config = args.config()?;
    let gated = config.referer_gate;
    let fake = FakeAniList::start(config)
        .await
        .context("starting the fake")?;
    println!("fake-anilist serving AniList GraphQL at {}", fake.url());
    println!("  stats: GET {}stats", fake.url());
    if gated {
        println!("  requests without a Referer header get AniList's 403 (--no-referer-gate)");
    }
    print_samples(&fake.world());
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    fake.shutdown().await;
    Ok(())
}

fn print_samples(world: &World) {
    println!(
        "  {} entries, {} franchises",
        world.len(),
        world.franchises().len()
    );
    for f in world.giants().chain(world.fan_outs()).take(6) {
        println!("  {:?} root {} ({} anime)", f.kind, f.root, f.members.len());
    }
    let roots: Vec<String> = world
        .franchises()
        .iter()
        .filter(|f| f.members.len() > 2)
        .take(8)
        .map(|f| format!("{} ({} anime)", f.root, f.members.len()))
        .collect();
    if !roots.is_empty() {
        println!("  sample franchise roots: {}", roots.join(", "));
    }
    if world.franchises().is_empty() {
        // Recorded entries have relations; stubs made from edge nodes do not.
        let ids: Vec<String> = world
            .entries()
            .filter(|e| !e.relations.is_empty())
            .take(8)
            .map(|e| e.id.to_string())
            .collect();
        println!("  sample ids: {}", ids.join(", "));
    }
}
