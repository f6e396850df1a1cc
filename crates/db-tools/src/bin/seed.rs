//! `seed`: test and demo fixtures (see `db_tools::seed`). Prints one line of JSON on stdout.

use std::process::ExitCode;

use db_tools::{admin_url, args::Args, connect, seed};

const USAGE: &str = "\
usage: seed [--database-url <admin url>] --json [--tenants <n>]
       seed [--database-url <admin url>] --demo [--reset-passwords]

  --json             create <n> (default 2) fresh tenants and print
                     {\"tenants\":[{\"id\",\"name\",\"users\":[{\"id\",\"email\",\"password\",\"role\"}],\"messages\":[{\"id\",\"ownerUserId\"}]}]}
  --demo             create the tenant `demo` if absent; print {\"created\":bool,\"tenants\":[...]} (passwords are
                     null when it already existed, unless --reset-passwords sets and prints new ones)
  --database-url     default $DATABASE_ADMIN_URL, else postgres://postgres@127.0.0.1:5432/postgres";

fn main() -> ExitCode {
    let args = match Args::parse(
        std::env::args().skip(1),
        &["database-url", "tenants"],
        &["json", "demo", "reset-passwords", "help"],
    ) {
        Ok(a) if a.flag("help") => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Ok(a) if a.flag("json") != a.flag("demo") => a,
        Ok(_) => {
            eprintln!("seed: give exactly one of --json or --demo\n{USAGE}");
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("seed: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let tenants: usize = match args.number("tenants", 2) {
        Ok(n) if (1..=1000).contains(&n) => n,
        Ok(_) => {
            eprintln!("seed: --tenants must be 1..=1000");
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("seed: {e}");
            return ExitCode::from(2);
        }
    };
    let url = admin_url(args.value("database-url"));

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result: Result<String, String> = runtime.block_on(async {
        let config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| format!("invalid database URL: {e}"))?;
        let mut client = connect(&config)
            .await
            .map_err(|e| format!("cannot connect: {e}"))?;
        let json = if args.flag("json") {
            let out = seed::seed_tenants(&mut client, tenants)
                .await
                .map_err(describe)?;
            serde_json::to_string(&out)
        } else {
            let out = seed::seed_demo(&mut client, args.flag("reset-passwords"))
                .await
                .map_err(describe)?;
            serde_json::to_string(&out)
        };
        json.map_err(|e| e.to_string())
    });
    match result {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("seed: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn describe(e: tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) if db.code().code() == "42P01" => {
            format!(
                "{} (has `migrate` been run on this database?)",
                db.message()
            )
        }
        Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
        None => e.to_string(),
    }
}
