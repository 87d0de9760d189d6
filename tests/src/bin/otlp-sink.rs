//! An OTLP receiver (gRPC, or HTTP with `--http`) on a free loopback port
//! that accepts and counts every export: the backend of the tracing
//! throughput benchmark (scripts/bench-tracing). Prints its endpoint, then
//! runs until killed.

use quarry_e2e::otlp::OtlpReceiver;

#[tokio::main]
async fn main() {
    let receiver = if std::env::args().any(|a| a == "--http") {
        OtlpReceiver::http().await
    } else {
        OtlpReceiver::grpc().await
    };
    println!("{}", receiver.endpoint());
    std::future::pending::<()>().await;
    drop(receiver);
}
