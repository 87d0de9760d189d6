//! Shared helpers for Quarry's end-to-end tests: starting the simulator and the
//! binaries on port 0, and reading their output.

pub mod clients;
pub mod docker;
pub mod otlp;
pub mod procs;

/// Starts an in-process simulator for the TOML `config` on a free loopback
/// port (plain HTTP); it stops when the returned server is dropped.
pub async fn start_sim(config: &str) -> anyhow::Result<quarry_sim::SimServer> {
    let config = quarry_sim::SimConfig::from_toml(config, "sim.toml")?;
    Ok(quarry_sim::SimServer::start(&config).await?)
}

/// [`start_sim`] with the server reading `clock` for `Date` headers and
/// SigV4 skew checks (signature-skew tests shift it).
pub async fn start_sim_with_clock(
    config: &str,
    clock: quarry_bedrock::auth::WallClock,
) -> anyhow::Result<quarry_sim::SimServer> {
    let config = quarry_sim::SimConfig::from_toml(config, "sim.toml")?;
    let options = quarry_sim::ServerOptions {
        clock,
        ..quarry_sim::ServerOptions::default()
    };
    Ok(quarry_sim::SimServer::bind(quarry_sim::Simulator::new(&config)?, options).await?)
}
