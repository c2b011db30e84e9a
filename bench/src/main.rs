//! `steplab-bench`: the benchmark command of issue 8. Runs the echo baseline
//! and the real stack (three `steplab serve` child processes) with the same
//! CPU placement, on SQLite and then on PostgreSQL, and prints one JSON line
//! per figure on stdout, then a readable table. Progress goes to stderr.
//!
//! ```text
//! cargo build --release -p steplab -p steplab-bench
//! cargo run --release -p steplab-bench --                      # everything, about 10 minutes
//! cargo run --release -p steplab-bench -- --only e2e --backend sqlite --duration-s 3
//! cargo run --release -p steplab-bench -- --quick              # a short smoke run
//! ```

mod e2e;
mod echo;
mod floods;
mod lists;
mod load;
mod procs;
mod seed;
mod stack;
mod stats;

use clap::{Parser, Subcommand, ValueEnum};
use stack::{Backend, Stack, StackOptions};
use stats::{Figure, ratio};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
#[command(name = "steplab-bench", about = "Benchmarks of the Steplab stack against this machine's echo baseline")]
struct Cli {
    #[command(subcommand)]
    command: Option<Sub>,
    /// Parts to run, comma-separated: echo, e2e, reads, cohort, offered, lists, replicas, floods.
    /// Throughput parts run the echo baseline too (for the ratios) unless --no-echo.
    #[arg(
        long,
        value_delimiter = ',',
        default_values = ["echo", "e2e", "reads", "cohort", "offered", "lists", "replicas", "floods"]
    )]
    only: Vec<Part>,
    #[arg(long, value_enum, default_value = "both")]
    backend: BackendChoice,
    /// Measured seconds per load figure.
    #[arg(long, default_value_t = 5.0)]
    duration_s: f64,
    /// Unmeasured seconds before each load figure.
    #[arg(long, default_value_t = 1.0)]
    warmup_s: f64,
    /// Concurrent callers for echo and end-to-end deferrals.
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 16, 64])]
    clients: Vec<usize>,
    /// Concurrent callers for GetReleaseState and GetParticipant.
    #[arg(long, value_delimiter = ',', default_values_t = [16usize, 64])]
    read_clients: Vec<usize>,
    /// Concurrent callers for the replicas step (split across the replicas).
    #[arg(long, value_delimiter = ',', default_values_t = [16usize, 64])]
    replica_clients: Vec<usize>,
    /// Registrations of the cohort intake (timed from the first call to the last command applied).
    #[arg(long, default_value_t = 20_000)]
    cohort_size: usize,
    /// Concurrent callers registering the cohort.
    #[arg(long, default_value_t = 64)]
    cohort_clients: usize,
    /// Deferrals per second offered in the open-loop lag figures, whatever the answers.
    #[arg(long, value_delimiter = ',', default_values_t = [200u32, 500, 1000])]
    offered_rates: Vec<u32>,
    /// HTTP/2 connections the callers share (per target, per replica), for echo and services alike.
    #[arg(long, default_value_t = 1)]
    connections: usize,
    /// Seeded participants for the list and statement figures on SQLite.
    /// 1,000,000 is left out by default: seeding its 42 million feed rows
    /// takes several minutes on 2 cores (add it: --sizes 10000,100000,200000,1000000).
    #[arg(long, value_delimiter = ',', default_values_t = [10_000usize, 100_000, 200_000])]
    sizes: Vec<usize>,
    /// The same on PostgreSQL.
    #[arg(long, value_delimiter = ',', default_values_t = [10_000usize, 100_000, 200_000])]
    pg_sizes: Vec<usize>,
    /// Size at which each service's resident memory is read (added to the sizes).
    #[arg(long, default_value_t = 200_000)]
    memory_at: usize,
    /// Calls of the floods part: half without a token, each naming a new 15 KB
    /// method, half with garbage tokens.
    #[arg(long, default_value_t = 20_000)]
    flood_calls: u64,
    /// A short smoke run: 2 s windows, sizes 10,000 and 50,000.
    #[arg(long)]
    quick: bool,
    /// Skip the echo baseline (ratios are then empty).
    #[arg(long)]
    no_echo: bool,
    /// Do not pin servers to CPU 0 and the load to CPU 1.
    #[arg(long)]
    no_pin: bool,
    /// The PostgreSQL server's admin URL; each service gets a fresh database
    /// on the same server, with the URL's parameters. A URL that names no
    /// `sslmode` gets `sslmode=disable` (see [`without_tls_by_default`]).
    #[arg(long, env = "STEPLAB_TEST_POSTGRES_URL", default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    postgres_url: String,
    /// RUST_LOG of the services (their production default is info).
    #[arg(long, default_value = "info")]
    rust_log: String,
}

#[derive(Subcommand, Debug)]
enum Sub {
    /// The echo server of the baseline (started by the benchmark itself).
    EchoServe {
        #[arg(long, default_value_t = 0)]
        port: u16,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
enum Part {
    Echo,
    E2e,
    Reads,
    Cohort,
    Offered,
    Lists,
    Replicas,
    Floods,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum BackendChoice {
    Sqlite,
    Postgres,
    Both,
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    // One CPU (pinned): a current-thread runtime, as the baseline's load generator.
    let n = std::thread::available_parallelism().map_or(1, |n| n.get());
    Ok(if n == 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()?
    } else {
        tokio::runtime::Builder::new_multi_thread().worker_threads(n).enable_all().build()?
    })
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Sub::EchoServe { port }) => runtime().and_then(|rt| rt.block_on(echo::serve(port))),
        None => {
            let placement = procs::Placement::pin_self(!cli.no_pin);
            runtime().and_then(|rt| rt.block_on(Bench::new(cli, placement).run()))
        }
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

struct Bench {
    cli: Cli,
    placement: procs::Placement,
    parts: BTreeSet<Part>,
    warmup: Duration,
    duration: Duration,
    figures: Vec<Figure>,
    echo: BTreeMap<u64, f64>,
    elapsed: Vec<(String, Duration)>,
    notes: Vec<String>,
}

impl Bench {
    fn new(mut cli: Cli, placement: procs::Placement) -> Bench {
        if cli.quick {
            cli.duration_s = cli.duration_s.min(2.0);
            cli.warmup_s = cli.warmup_s.min(0.5);
            cli.sizes = vec![10_000, 50_000];
            cli.pg_sizes = vec![10_000, 50_000];
            cli.memory_at = 50_000;
            cli.flood_calls = cli.flood_calls.min(4_000);
            cli.cohort_size = cli.cohort_size.min(2_000);
            cli.offered_rates = vec![200];
        }
        cli.postgres_url = without_tls_by_default(&cli.postgres_url);
        let parts = cli.only.iter().copied().collect();
        Bench {
            warmup: Duration::from_secs_f64(cli.warmup_s),
            duration: Duration::from_secs_f64(cli.duration_s),
            cli,
            placement,
            parts,
            figures: Vec::new(),
            echo: BTreeMap::new(),
            elapsed: Vec::new(),
            notes: Vec::new(),
        }
    }

    fn emit(&mut self, mut f: Figure) {
        if f.ratio_to_echo.is_none() && f.clients > 0 && f.figure != "echo" && f.per_s > 0.0 {
            f.ratio_to_echo = match f.extra.get("pages_per_s").and_then(serde_json::Value::as_f64) {
                Some(pages) => ratio(pages, self.echo.get(&1).copied()),
                None => ratio(f.per_s, self.echo.get(&f.clients).copied()),
            };
        }
        println!("{}", f.json());
        let _ = std::io::stdout().flush();
        self.figures.push(f);
    }

    fn note(&mut self, text: String) {
        eprintln!("{text}");
        self.notes.push(text);
    }

    async fn timed<T>(
        &mut self,
        label: String,
        fut: impl std::future::Future<Output = anyhow::Result<T>>,
    ) -> anyhow::Result<T> {
        eprintln!("== {label}");
        let t = Instant::now();
        let r = fut.await;
        let took = t.elapsed();
        eprintln!("== {label}: {:.1} s", took.as_secs_f64());
        self.elapsed.push((label, took));
        r
    }

    async fn run(mut self) -> anyhow::Result<()> {
        let started = Instant::now();
        eprintln!("placement: {}", self.placement.description);
        // The mode only: the URL may carry a password.
        let tls = self.cli.postgres_url.split(['?', '&']).find(|p| p.starts_with("sslmode=")).unwrap_or_default();
        eprintln!("postgresql: {tls}");
        let wants_throughput = [Part::E2e, Part::Reads, Part::Cohort, Part::Offered, Part::Replicas, Part::Lists]
            .iter()
            .any(|p| self.parts.contains(p));
        let needs_stack = wants_throughput || self.parts.contains(&Part::Floods);
        if needs_stack {
            procs::steplab_binary()?;
        }
        if self.parts.contains(&Part::Echo) || (wants_throughput && !self.cli.no_echo) {
            let t = Instant::now();
            eprintln!("== echo baseline");
            self.echo_part().await?;
            self.elapsed.push(("echo".into(), t.elapsed()));
        }
        let mut backends = Vec::new();
        if matches!(self.cli.backend, BackendChoice::Sqlite | BackendChoice::Both) {
            backends.push(Backend::Sqlite);
        }
        if matches!(self.cli.backend, BackendChoice::Postgres | BackendChoice::Both) {
            match stack::PgDatabases::reachable(&self.cli.postgres_url) {
                Ok(()) => backends.push(Backend::Postgres),
                Err(e) => {
                    let msg = format!(
                        "\n*** SKIPPED: PostgreSQL at {} is not reachable ({e}); every PostgreSQL figure is missing ***\n",
                        self.cli.postgres_url
                    );
                    self.note(msg);
                }
            }
        }
        for backend in backends.clone() {
            if self.parts.contains(&Part::E2e) || self.parts.contains(&Part::Reads) {
                let t = Instant::now();
                let r = self.e2e_part(backend).await;
                self.elapsed.push((format!("{} e2e+reads", backend.as_str()), t.elapsed()));
                r?;
            }
            if self.parts.contains(&Part::Cohort) || self.parts.contains(&Part::Offered) {
                let t = Instant::now();
                let r = self.intake_part(backend).await;
                self.elapsed.push((format!("{} cohort+offered", backend.as_str()), t.elapsed()));
                r?;
            }
            if self.parts.contains(&Part::Lists) {
                let t = Instant::now();
                let r = self.lists_part(backend).await;
                self.elapsed.push((format!("{} lists", backend.as_str()), t.elapsed()));
                r?;
            }
            if self.parts.contains(&Part::Floods) {
                let t = Instant::now();
                let r = self.floods_part(backend).await;
                self.elapsed.push((format!("{} floods", backend.as_str()), t.elapsed()));
                r?;
            }
        }
        if self.parts.contains(&Part::Replicas) {
            if backends.contains(&Backend::Postgres) {
                let t = Instant::now();
                let r = self.replicas_part().await;
                self.elapsed.push(("postgres replicas".into(), t.elapsed()));
                r?;
            } else {
                self.note("replicas: skipped (needs PostgreSQL; two replicas share one database)".into());
            }
        }
        self.report(started.elapsed());
        Ok(())
    }

    async fn echo_part(&mut self) -> anyhow::Result<()> {
        let dir = tempfile::Builder::new().prefix("steplab-bench-echo-").tempdir()?;
        let server = procs::start_echo(&self.placement, dir.path()).await?;
        let mut levels: BTreeSet<usize> = self.cli.clients.iter().copied().collect();
        levels.extend(self.cli.read_clients.iter().copied());
        levels.extend(self.cli.replica_clients.iter().copied());
        levels.insert(1);
        let pid = server.pid().unwrap_or(0);
        for clients in levels {
            let cpu = vec![("echo".to_owned(), pid), ("load".to_owned(), std::process::id())];
            let mut f =
                echo::measure(server.addr, clients, self.cli.connections, self.warmup, self.duration, cpu).await?;
            f.ratio_to_echo = Some(1.0);
            self.echo.insert(clients as u64, f.per_s);
            f.set("placement", self.placement.description.clone());
            self.emit(f);
        }
        server.stop(Duration::from_secs(2)).await;
        Ok(())
    }

    fn stack_options(&self, backend: Backend, replicas: usize) -> StackOptions {
        StackOptions {
            backend,
            postgres_admin_url: self.cli.postgres_url.clone(),
            participant_replicas: replicas,
            rust_log: self.cli.rust_log.clone(),
        }
    }

    /// Seconds of registering needed for a pool that lasts the deferral levels.
    fn pool_budget(&self, levels: &[usize]) -> Duration {
        let busy = levels.iter().filter(|c| **c > 1).count().max(1) as f64;
        Duration::from_secs_f64((self.cli.warmup_s + self.cli.duration_s) * busy * 1.3 + 2.0)
    }

    async fn e2e_part(&mut self, backend: Backend) -> anyhow::Result<()> {
        let b = backend.as_str();
        let stack = Stack::start(&self.placement, &self.stack_options(backend, 1)).await?;
        eprintln!("{b}: stack up (logs in {})", stack.log_dir().display());
        let w = e2e::world(&stack).await?;
        let levels = if self.parts.contains(&Part::E2e) { self.cli.clients.clone() } else { Vec::new() };
        let budget = if levels.is_empty() { Duration::from_secs(3) } else { self.pool_budget(&levels) };
        let t = Instant::now();
        let registered = e2e::register_pool(&stack, &w, 64, self.cli.connections, budget, 500_000).await?;
        let (ids, refusals) = (registered.ids, registered.refusals);
        let registered_in = t.elapsed();
        let drained = e2e::wait_drained(&stack, Duration::from_secs(600)).await?;
        self.note(format!(
            "{b}: registered {} ECTs in {:.1} s ({:.0}/s at 64 callers, {refusals} asked to slow down), their \
             enrolments delivered {:.1} s later",
            ids.len(),
            registered_in.as_secs_f64(),
            ids.len() as f64 / registered_in.as_secs_f64(),
            drained.as_secs_f64()
        ));
        let pool = e2e::Pool::new(ids);
        for clients in levels {
            let f = self
                .timed(
                    format!("{b} deferrals e2e, {clients} clients"),
                    e2e::deferrals(&stack, &w, &pool, clients, self.cli.connections, self.warmup, self.duration),
                )
                .await?;
            self.emit(f);
            eprintln!("{b}: {} fresh ECTs left", pool.left());
        }
        if self.parts.contains(&Part::Reads) {
            for rpc in ["GetReleaseState", "GetParticipant"] {
                for clients in self.cli.read_clients.clone() {
                    let f = self
                        .timed(
                            format!("{b} {rpc}, {clients} clients"),
                            e2e::reads(
                                &stack,
                                &w,
                                &pool,
                                rpc,
                                clients,
                                self.cli.connections,
                                self.warmup,
                                self.duration,
                            ),
                        )
                        .await?;
                    self.emit(f);
                }
            }
        }
        stack.stop().await;
        Ok(())
    }

    /// The cohort intake on a fresh stack, then deferrals of that cohort
    /// offered at fixed rates (the open-loop lag figures).
    async fn intake_part(&mut self, backend: Backend) -> anyhow::Result<()> {
        let b = backend.as_str();
        let stack = Stack::start(&self.placement, &self.stack_options(backend, 1)).await?;
        eprintln!("{b}: stack up for the cohort intake (logs in {})", stack.log_dir().display());
        let w = e2e::world(&stack).await?;
        let (size, clients, connections) = (self.cli.cohort_size, self.cli.cohort_clients, self.cli.connections);
        let mut ids = Vec::new();
        if self.parts.contains(&Part::Cohort) {
            let (f, registered) = self
                .timed(
                    format!("{b} cohort intake, {size} registrations"),
                    e2e::cohort(&stack, &w, size, clients, connections),
                )
                .await?;
            self.emit(f);
            ids = registered;
        }
        if self.parts.contains(&Part::Offered) {
            let window = self.cli.warmup_s + self.cli.duration_s;
            let needed: usize =
                self.cli.offered_rates.iter().map(|r| (f64::from(*r) * window * 1.1) as usize + 10).sum();
            if ids.len() < needed {
                let more =
                    e2e::register_pool(&stack, &w, clients, connections, Duration::from_secs(600), needed - ids.len())
                        .await?;
                ids.extend(more.ids);
                e2e::wait_drained(&stack, Duration::from_secs(600)).await?;
            }
            let pool = e2e::Pool::new(ids);
            let mut highest_sustained = None;
            for rate in self.cli.offered_rates.clone() {
                let f = self
                    .timed(
                        format!("{b} deferrals offered at {rate}/s"),
                        e2e::offered(&stack, &w, &pool, rate, connections, self.warmup, self.duration),
                    )
                    .await?;
                if f.extra.get("sustained").and_then(serde_json::Value::as_bool) == Some(true)
                    && highest_sustained.is_none_or(|(highest, _)| rate > highest)
                {
                    let lag = f.extra.get("lag_p99_ms").and_then(serde_json::Value::as_f64).unwrap_or_default();
                    highest_sustained = Some((rate, lag));
                }
                self.emit(f);
            }
            self.note(match highest_sustained {
                Some((rate, lag)) => format!("{b}: highest offered rate sustained {rate}/s, lag p99 {lag} ms"),
                None => format!("{b}: no offered rate was sustained"),
            });
        }
        stack.stop().await;
        Ok(())
    }

    async fn lists_part(&mut self, backend: Backend) -> anyhow::Result<()> {
        let b = backend.as_str();
        let mut sizes = if backend == Backend::Postgres { self.cli.pg_sizes.clone() } else { self.cli.sizes.clone() };
        if !sizes.contains(&self.cli.memory_at) {
            sizes.push(self.cli.memory_at);
        }
        sizes.sort_unstable();
        sizes.dedup();
        if !sizes.iter().any(|s| *s >= 1_000_000) {
            self.note(format!(
                "{b} lists: sizes {sizes:?}; 1,000,000 left out (seeding 42 million feed rows does not fit the \
                 10-minute budget on 2 cores: add it with --sizes / --pg-sizes)"
            ));
        }
        let stack = Stack::start(&self.placement, &self.stack_options(backend, 1)).await?;
        eprintln!("{b}: stack up for lists (logs in {})", stack.log_dir().display());
        let mut seeder = lists::Seeder::new(&stack)?;
        for size in sizes {
            let (next, took) = seeder.grow_to(size).await?;
            seeder = next;
            eprintln!("{b}: seeded {size} participants ({:.1} s)", took.as_secs_f64());
            self.elapsed.push((format!("{b} seeding to {size}"), took));
            let Some((day, _)) = seeder.busiest_day() else { anyhow::bail!("nothing seeded") };
            let f = self.timed(format!("{b} ListReleases day, {size}"), lists::list_day(&stack, day, size)).await?;
            self.emit(f);
            let f = self.timed(format!("{b} GetStatement window, {size}"), lists::statement(&stack, size)).await?;
            self.emit(f);
            if size == self.cli.memory_at {
                for f in lists::memory(&stack, size) {
                    self.emit(f);
                }
            }
        }
        stack.stop().await;
        Ok(())
    }

    /// A bounded flood of unauthenticated calls while one client makes valid
    /// calls, on a fresh stack (see `floods`).
    async fn floods_part(&mut self, backend: Backend) -> anyhow::Result<()> {
        let b = backend.as_str();
        let mut stack = Stack::start(&self.placement, &self.stack_options(backend, 1)).await?;
        eprintln!("{b}: stack up for floods (logs in {})", stack.log_dir().display());
        let calls = self.cli.flood_calls;
        let duration = self.duration;
        let figures =
            self.timed(format!("{b} floods, {calls} calls"), floods::measure(&mut stack, calls, duration)).await?;
        for f in figures {
            self.emit(f);
        }
        stack.stop().await;
        Ok(())
    }

    async fn replicas_part(&mut self) -> anyhow::Result<()> {
        for replicas in [1usize, 2] {
            let stack = Stack::start(&self.placement, &self.stack_options(Backend::Postgres, replicas)).await?;
            eprintln!("postgres: {replicas} participant replica(s) up (logs in {})", stack.log_dir().display());
            let w = e2e::world(&stack).await?;
            let levels = self.cli.replica_clients.clone();
            let budget = self.pool_budget(&levels);
            let registered = e2e::register_pool(&stack, &w, 64, self.cli.connections, budget, 500_000).await?;
            e2e::wait_drained(&stack, Duration::from_secs(600)).await?;
            let pool = e2e::Pool::new(registered.ids);
            for clients in levels {
                let mut f = self
                    .timed(
                        format!("postgres deferrals e2e, {replicas} replica(s), {clients} clients"),
                        e2e::deferrals(&stack, &w, &pool, clients, self.cli.connections, self.warmup, self.duration),
                    )
                    .await?;
                f.figure = format!("replicas{replicas}_deferrals");
                self.emit(f);
            }
            stack.stop().await;
        }
        Ok(())
    }

    fn report(&self, total: Duration) {
        println!();
        println!("placement: {}", self.placement.description);
        print!("{}", stats::table(&self.figures));
        println!();
        println!("elapsed:");
        for (label, took) in &self.elapsed {
            println!("  {label:<48} {:>7.1} s", took.as_secs_f64());
        }
        println!("  {:<48} {:>7.1} s", "total", total.as_secs_f64());
        for n in &self.notes {
            println!("{}", n.trim());
        }
    }
}

/// `url` with `sslmode=disable` added when it names no `sslmode`.
///
/// The bench's PostgreSQL is on the same machine: libpq's default
/// (`prefer`) then encrypts every statement and answer on the loopback,
/// where nothing off the machine can read them: PostgreSQL applied a fifth
/// to a third fewer deferrals at 16 clients with it (docs/benchmarks.md,
/// sixth round). docs/production.md advises the same for a database on the
/// same host; a URL that names its `sslmode` is measured as given.
fn without_tls_by_default(url: &str) -> String {
    if url.contains("sslmode=") {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&sslmode=disable")
    } else {
        format!("{url}?sslmode=disable")
    }
}

#[cfg(test)]
mod tests {
    use super::without_tls_by_default;

    #[test]
    fn an_offered_rate_is_sustained_when_nearly_all_is_accepted_and_applied() {
        use crate::e2e::sustained;
        assert!(sustained(500.0, 495.0, 490.0));
        assert!(!sustained(1000.0, 445.0, 440.0), "backpressure refused half");
        assert!(!sustained(500.0, 500.0, 400.0), "the backlog grew");
    }

    #[test]
    fn a_postgres_url_without_an_sslmode_is_measured_without_tls_and_one_with_it_as_given() {
        assert_eq!(without_tls_by_default("postgres://p@h:5432/db"), "postgres://p@h:5432/db?sslmode=disable");
        assert_eq!(
            without_tls_by_default("postgres://p@h/db?connect_timeout=5"),
            "postgres://p@h/db?connect_timeout=5&sslmode=disable"
        );
        assert_eq!(without_tls_by_default("postgres://p@h/db?sslmode=require"), "postgres://p@h/db?sslmode=require");
    }
}
