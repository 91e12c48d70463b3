use std::process::ExitCode;

use clap::Parser;
use vacancy_bench::cli::{BenchArgs, shell_line};

fn main() -> ExitCode {
    let args = BenchArgs::parse();
    let command =
        shell_line(std::iter::once("vacancy-bench".to_owned()).chain(std::env::args().skip(1)));
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.client_threads())
        .thread_name("vacancy-bench-client")
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        let report = vacancy_bench::run::run(&args, command).await?;
        let markdown = vacancy_bench::run::write_outputs(&report, &args)?;
        anyhow::Ok((report, markdown))
    });
    match outcome {
        Ok((report, markdown)) => {
            println!("{markdown}");
            let overbooked = vacancy_bench::run::overbookings(&report);
            if overbooked > 0 {
                eprintln!("error: the audit found {overbooked} overbooked nights");
                return ExitCode::from(2);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
