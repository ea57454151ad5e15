//! `console`: the standalone telemetry console. Receives OTLP/gRPC and OTLP/HTTP (protobuf)
//! from any service and serves the console UI to loopback clients. Settings: `console --help`.

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    console::standalone::main("console", &args)
}
