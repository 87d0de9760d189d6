//! Compiles `proto/quarry/v1/*.proto` with protox (pure Rust), so the crate
//! builds on a machine with no system `protoc`. The service's client and
//! server stubs follow the crate's `client` and `server` features.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = ["proto/quarry/v1/agent.proto"];
    for file in files {
        println!("cargo:rerun-if-changed={file}");
    }
    let descriptors = protox::compile(files, ["proto"])?;
    tonic_prost_build::configure()
        .build_client(std::env::var_os("CARGO_FEATURE_CLIENT").is_some())
        .build_server(std::env::var_os("CARGO_FEATURE_SERVER").is_some())
        .compile_fds(descriptors)?;
    Ok(())
}
