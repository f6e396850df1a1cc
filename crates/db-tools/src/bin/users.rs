//! `users`: the operator's account changes (see `db_tools::users`). Prints the user as one line of
//! JSON on stdout; exit 1 on failure (nothing changed), 3 when no user has that email.

use std::process::ExitCode;

use auth_core::{Email, Role};
use db_tools::users::{self, Change};
use db_tools::{admin_url, args::Args, connect};

const USAGE: &str = "\
usage: users --email <email> [--deactivate | --activate] [--role user|admin] [--end-sessions]
             [--database-url <owner url>] [--redis-url <url>]

  --deactivate       the user can no longer log in; their sessions end at once
  --activate         the user can log in again
  --role             a new role; a change of role ends the user's sessions at once
  --end-sessions     end every session of the user (refresh tokens and access tokens)
  --database-url     default $DATABASE_ADMIN_URL, else postgres://postgres@127.0.0.1:5432/postgres
  --redis-url        default $REDIS_URL, else redis://127.0.0.1:6379 (the app's revocation list)";

fn main() -> ExitCode {
    let args = match Args::parse(
        std::env::args().skip(1),
        &["email", "role", "database-url", "redis-url"],
        &["deactivate", "activate", "end-sessions", "help"],
    ) {
        Ok(a) if a.flag("help") => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Ok(a) => a,
        Err(e) => return usage(&e),
    };
    let Some(email) = args.value("email") else {
        return usage("--email is required");
    };
    let Ok(email) = Email::parse(&email) else {
        return usage("--email is not an email address");
    };
    if args.flag("deactivate") && args.flag("activate") {
        return usage("give at most one of --deactivate and --activate");
    }
    let role = match args.value("role").map(|r| r.parse::<Role>()) {
        None => None,
        Some(Ok(r)) => Some(r),
        Some(Err(_)) => return usage("--role must be user or admin"),
    };
    let change = Change {
        active: if args.flag("deactivate") {
            Some(false)
        } else if args.flag("activate") {
            Some(true)
        } else {
            None
        },
        role,
        end_sessions: args.flag("end-sessions"),
    };
    if change == Change::default() {
        return usage("nothing to change");
    }
    let url = admin_url(args.value("database-url"));
    let redis_url = args
        .value("redis-url")
        .or_else(|| std::env::var("REDIS_URL").ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "redis://127.0.0.1:6379".to_owned());

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = runtime.block_on(async {
        let config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| format!("invalid database URL: {e}"))?;
        let client = connect(&config)
            .await
            .map_err(|e| format!("cannot connect: {e}"))?;
        users::apply(&client, &redis_url, &email, &change, auth_core::unix_now()).await
    });
    match result {
        Ok(Some(outcome)) => {
            println!(
                "{}",
                serde_json::to_string(&outcome).expect("the outcome serialises")
            );
            ExitCode::SUCCESS
        }
        Ok(None) => {
            eprintln!("users: no user has that email");
            ExitCode::from(3)
        }
        Err(e) => {
            eprintln!("users: error (nothing changed): {e}");
            ExitCode::FAILURE
        }
    }
}

fn usage(problem: &str) -> ExitCode {
    eprintln!("users: {problem}\n{USAGE}");
    ExitCode::from(2)
}
