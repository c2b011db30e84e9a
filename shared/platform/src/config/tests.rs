//! The configuration's tests: defaults, every variable's checks, and the
//! blocks' declarations themselves.

use super::*;
use chrono::NaiveDate;
use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::time::Duration;

fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    Config::from_lookup(|k| map.get(k).cloned())
}

#[test]
fn x9_the_dfe_sync_is_off_without_a_url_and_needs_a_token_file_with_one() {
    let c = config(&[]).expect("defaults");
    assert_eq!(c.dfe.api_url, None);
    assert_eq!(c.dfe.rate_limit_per_5_min, 1_000);
    assert_eq!(c.targets.dfe_gateway_url, "http://127.0.0.1:50054");
    let err = config(&[("STEPLAB_DFE_API_URL", "https://dfe.example")]).expect_err("no token file");
    assert_eq!(err.variable, "STEPLAB_DFE_TOKEN_FILE");
    let c = config(&[
        ("STEPLAB_DFE_API_URL", "https://dfe.example/"),
        ("STEPLAB_DFE_TOKEN_FILE", "/run/secrets/dfe-token"),
        ("STEPLAB_DFE_RATE_LIMIT_PER_5_MIN", "300"),
    ])
    .expect("dfe on");
    assert_eq!(c.dfe.api_url.as_deref(), Some("https://dfe.example"));
    assert_eq!(c.dfe.token_file, Some(PathBuf::from("/run/secrets/dfe-token")));
    assert_eq!(c.dfe.rate_limit_per_5_min, 300);
    let err = config(&[("STEPLAB_DFE_RATE_LIMIT_PER_5_MIN", "0")]).expect_err("zero rate");
    assert_eq!(err.variable, "STEPLAB_DFE_RATE_LIMIT_PER_5_MIN");
    let err = config(&[("STEPLAB_DFE_API_URL", "dfe.example")]).expect_err("not a URL");
    assert_eq!(err.variable, "STEPLAB_DFE_API_URL");
}

#[test]
fn defaults_are_sqlite_files_in_the_data_dir_on_the_standard_ports() {
    let c = config(&[("STEPLAB_DATA_DIR", "/tmp/x")]).expect("defaults");
    assert_eq!(c.participant.database, DatabaseUrl::Sqlite("/tmp/x/participant.sqlite3".into()));
    assert_eq!(c.payments.listen.port(), 50053);
    assert_eq!(c.targets.content_url, "http://127.0.0.1:50052");
    assert_eq!(c.auth.jwt_secret, JwtSecretSource::File("/tmp/x/jwt-secret".into()));
    assert_eq!(c.process.log_format, LogFormat::Text);
    assert_eq!(c.metrics.listen, None);
    assert_eq!(c.readiness.interval, Duration::from_secs(5));
    let c = config(&[("STEPLAB_METRICS_LISTEN", "0.0.0.0:9090")]).expect("metrics");
    assert_eq!(c.metrics.listen, Some(SocketAddr::from(([0, 0, 0, 0], 9090))));
}

#[test]
fn a_database_url_typo_is_an_error_naming_the_variable_not_a_new_sqlite_file() {
    let err = config(&[("STEPLAB_PARTICIPANT_DATABASE_URL", "postgresdb")]).expect_err("typo");
    assert_eq!(err.variable, "STEPLAB_PARTICIPANT_DATABASE_URL");
    assert!(err.to_string().contains("postgres://"), "{err}");
}

#[test]
fn postgres_and_sqlite_urls_are_recognised() {
    let c = config(&[
        ("STEPLAB_PARTICIPANT_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/p"),
        ("STEPLAB_CONTENT_DATABASE_URL", "sqlite:///var/lib/c.sqlite3"),
        ("STEPLAB_PAYMENTS_DATABASE_URL", "file:pay.db"),
    ])
    .expect("valid");
    assert!(c.participant.database.is_postgres());
    assert_eq!(c.content.database, DatabaseUrl::Sqlite("/var/lib/c.sqlite3".into()));
    assert_eq!(c.payments.database, DatabaseUrl::Sqlite("pay.db".into()));
}

#[test]
fn an_in_memory_sqlite_url_is_refused() {
    let err = config(&[("STEPLAB_CONTENT_DATABASE_URL", "sqlite://:memory:")]).expect_err("memory");
    assert_eq!(err.variable, "STEPLAB_CONTENT_DATABASE_URL");
}

#[test]
fn bad_values_name_their_variable() {
    for (var, value) in [
        ("STEPLAB_TODAY", "2026-02-30"),
        ("STEPLAB_LOG_FORMAT", "xml"),
        ("STEPLAB_PAYMENTS_LISTEN", "50053"),
        ("STEPLAB_CONTENT_URL", "content:50052"),
        ("STEPLAB_JWT_SECRET", "short"),
        ("STEPLAB_DRAIN_SECONDS", "soon"),
        ("STEPLAB_RELAY_MAX_ATTEMPTS", "0"),
        ("STEPLAB_RELAY_MAX_BACKOFF_MS", "fast"),
        ("STEPLAB_RELAY_BATCH_SIZE", "0"),
        ("STEPLAB_RELAY_BATCH_SIZE", "1001"),
        ("STEPLAB_RELAY_IN_FLIGHT", "0"),
        ("STEPLAB_RELAY_IN_FLIGHT", "65"),
        ("STEPLAB_RELAY_IN_FLIGHT", "many"),
        ("STEPLAB_RELAY_LINGER_MS", "1001"),
        ("STEPLAB_RELAY_LINGER_MS", "5ms"),
        ("STEPLAB_DATABASE_POOL_SIZE", "0"),
        ("STEPLAB_DATABASE_POOL_SIZE", "1001"),
        ("STEPLAB_DATABASE_POOL_SIZE", "ten"),
        ("STEPLAB_METRICS_LISTEN", "9090"),
        ("STEPLAB_MAX_MESSAGE_BYTES", "0"),
        ("STEPLAB_MAX_MESSAGE_BYTES", "4MB"),
        ("STEPLAB_MAX_CONCURRENT_PER_CONNECTION", "0"),
        ("STEPLAB_MAX_CONCURRENT_REQUESTS", "-1"),
        ("STEPLAB_RATE_LIMIT_PER_MINUTE", "lots"),
        ("STEPLAB_MAX_CONNECTIONS", "0"),
        ("STEPLAB_HANDSHAKE_TIMEOUT_SECONDS", "10s"),
        ("STEPLAB_IDLE_TIMEOUT_SECONDS", "0"),
        ("STEPLAB_KEEPALIVE_INTERVAL_SECONDS", "never"),
        ("STEPLAB_KEEPALIVE_TIMEOUT_SECONDS", "0"),
        ("STEPLAB_READINESS_INTERVAL_MS", "0"),
        ("STEPLAB_READINESS_INTERVAL_MS", "5s"),
    ] {
        let err = config(&[(var, value)]).expect_err(var);
        assert_eq!(err.variable, var);
    }
}

#[test]
fn backpressure_defaults_to_a_quarter_second_zero_turns_it_off_and_nonsense_is_refused() {
    let bound = |value: &str| config(&[("STEPLAB_BACKPRESSURE_MAX_LAG_MS", value)]).map(|c| c.backpressure.max_lag);
    assert_eq!(config(&[]).expect("defaults").backpressure.max_lag, Some(Duration::from_millis(250)));
    assert_eq!(bound("0"), Ok(None));
    assert_eq!(bound(" 1500 "), Ok(Some(Duration::from_millis(1_500))));
    assert_eq!(bound("600000"), Ok(Some(Duration::from_secs(600))));
    for nonsense in ["600001", "-1", "250ms", "fast"] {
        let err = bound(nonsense).expect_err(nonsense);
        assert_eq!(err.variable, "STEPLAB_BACKPRESSURE_MAX_LAG_MS");
        assert!(err.problem.contains("0 (backpressure off) to 600000"), "{}", err.problem);
    }
    let config = config(&[("STEPLAB_BACKPRESSURE_MAX_LAG_MS", "400")]).expect("valid");
    assert_eq!(config.participant_config().backpressure.max_lag, Some(Duration::from_millis(400)));
    assert_eq!(config.payments_config().backpressure.max_lag, Some(Duration::from_millis(400)));
}

#[test]
fn backpressure_spares_a_backlog_of_thirty_commands_by_default_and_nonsense_is_refused() {
    let least =
        |value: &str| config(&[("STEPLAB_BACKPRESSURE_MIN_BACKLOG", value)]).map(|c| c.backpressure.min_backlog);
    assert_eq!(config(&[]).expect("defaults").backpressure.min_backlog, 30);
    assert_eq!(least("0"), Ok(0), "0: any command on its way past the bound counts");
    assert_eq!(least(" 500 "), Ok(500));
    for nonsense in ["64001", "-1", "ten", "3.5"] {
        let err = least(nonsense).expect_err(nonsense);
        assert_eq!(err.variable, "STEPLAB_BACKPRESSURE_MIN_BACKLOG");
    }
    let config = config(&[("STEPLAB_BACKPRESSURE_MIN_BACKLOG", "7")]).expect("valid");
    assert_eq!(config.participant_config().backpressure.min_backlog, 7);
    assert_eq!(config.payments_config().backpressure.min_backlog, 7);
}

#[test]
fn audit_retention_defaults_to_400_days_zero_keeps_forever_and_nonsense_is_refused() {
    assert_eq!(config(&[]).expect("defaults").audit.retention_days, 400);
    assert_eq!(config(&[("STEPLAB_AUDIT_RETENTION_DAYS", "0")]).expect("forever").audit.retention_days, 0);
    assert_eq!(config(&[("STEPLAB_AUDIT_RETENTION_DAYS", " 30 ")]).expect("30").audit.retention_days, 30);
    for bad in ["-1", "a year", "36501"] {
        let err = config(&[("STEPLAB_AUDIT_RETENTION_DAYS", bad)]).expect_err(bad);
        assert_eq!(err.variable, "STEPLAB_AUDIT_RETENTION_DAYS");
    }
}

#[test]
fn database_pools_default_to_10_on_postgres_and_4_on_sqlite_and_one_setting_sizes_every_pool() {
    let pg = ("STEPLAB_PAYMENTS_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/payments");
    let defaults = config(&[pg]).expect("defaults");
    assert_eq!(defaults.payments.pool_size, 10);
    assert_eq!(defaults.participant.pool_size, 4);
    let set = config(&[pg, ("STEPLAB_DATABASE_POOL_SIZE", " 3 ")]).expect("set");
    assert_eq!((set.participant.pool_size, set.payments.pool_size), (3, 3));
}

#[test]
fn relay_batches_default_to_256_commands_4_in_flight_and_can_be_set_within_bounds() {
    let defaults = config(&[]).expect("defaults").relay;
    assert_eq!((defaults.batch_size, defaults.in_flight), (256, 4));
    let set = config(&[("STEPLAB_RELAY_BATCH_SIZE", " 1000 "), ("STEPLAB_RELAY_IN_FLIGHT", "1")]).expect("set").relay;
    assert_eq!((set.batch_size, set.in_flight), (1000, 1));
    let small = config(&[("STEPLAB_RELAY_BATCH_SIZE", "1"), ("STEPLAB_RELAY_IN_FLIGHT", "64")]).expect("set").relay;
    assert_eq!((small.batch_size, small.in_flight), (1, 64));
}

#[test]
fn the_relay_lingers_5_ms_by_default_and_0_claims_at_once() {
    assert_eq!(config(&[]).expect("defaults").relay.linger, Duration::from_millis(5));
    let at_once = config(&[("STEPLAB_RELAY_LINGER_MS", "0")]).expect("0 is allowed").relay;
    assert_eq!(at_once.linger, Duration::ZERO);
    assert_eq!(config(&[("STEPLAB_RELAY_LINGER_MS", "1000")]).expect("max").relay.linger, Duration::from_secs(1));
}

#[test]
fn limits_have_defaults_and_can_be_set() {
    let c = config(&[]).expect("defaults");
    assert_eq!(c.limits, Limits::default());
    assert_eq!(c.limits.max_message_bytes, 4 * 1024 * 1024);
    let c = config(&[
        ("STEPLAB_MAX_MESSAGE_BYTES", "1048576"),
        ("STEPLAB_MAX_CONCURRENT_PER_CONNECTION", "8"),
        ("STEPLAB_MAX_CONCURRENT_REQUESTS", "32"),
        ("STEPLAB_RATE_LIMIT_PER_MINUTE", "0"),
        ("STEPLAB_MAX_CONNECTIONS", "100"),
        ("STEPLAB_HANDSHAKE_TIMEOUT_SECONDS", "2"),
        ("STEPLAB_IDLE_TIMEOUT_SECONDS", "60"),
        ("STEPLAB_KEEPALIVE_INTERVAL_SECONDS", "30"),
        ("STEPLAB_KEEPALIVE_TIMEOUT_SECONDS", "5"),
    ])
    .expect("valid");
    assert_eq!(
        c.limits,
        Limits {
            max_message_bytes: 1_048_576,
            max_concurrent_per_connection: 8,
            max_concurrent_requests: 32,
            rate_limit_per_minute: 0,
            max_connections: 100,
            handshake_timeout: Duration::from_secs(2),
            idle_timeout: Duration::from_secs(60),
            keepalive_interval: Duration::from_secs(30),
            keepalive_timeout: Duration::from_secs(5),
        }
    );
}

#[test]
fn tls_certificate_and_key_come_together_and_make_the_default_targets_https() {
    let cert = ("STEPLAB_TLS_CERT_FILE", "/etc/steplab/tls/tls.crt");
    let key = ("STEPLAB_TLS_KEY_FILE", "/etc/steplab/tls/tls.key");
    let ca = ("STEPLAB_TLS_CA_FILE", "/etc/steplab/tls/ca.crt");
    let client_ca = ("STEPLAB_TLS_CLIENT_CA_FILE", "/etc/steplab/tls/clients.crt");
    // One alone is an error naming the other, and the message names both.
    let err = config(&[cert]).expect_err("cert alone");
    assert_eq!(err.variable, "STEPLAB_TLS_KEY_FILE");
    assert!(err.to_string().contains("STEPLAB_TLS_CERT_FILE"), "{err}");
    let err = config(&[key]).expect_err("key alone");
    assert_eq!(err.variable, "STEPLAB_TLS_CERT_FILE");
    assert!(err.to_string().contains("STEPLAB_TLS_KEY_FILE"), "{err}");
    assert_eq!(config(&[client_ca]).expect_err("mtls without tls").variable, "STEPLAB_TLS_CLIENT_CA_FILE");

    // Off by default: plaintext listeners and http targets.
    let plain = config(&[]).expect("defaults");
    assert_eq!(plain.tls, TlsFiles::default());
    assert!(!plain.tls.serves_tls());
    assert_eq!(plain.targets.payments_url, "http://127.0.0.1:50053");

    let c = config(&[cert, key, ca, client_ca, ("STEPLAB_CONTENT_LISTEN", "0.0.0.0:6000")]).expect("tls");
    assert!(c.tls.serves_tls());
    assert_eq!(c.tls.key_file, Some(PathBuf::from("/etc/steplab/tls/tls.key")));
    assert_eq!(c.tls.ca_file, Some(PathBuf::from("/etc/steplab/tls/ca.crt")));
    assert_eq!(c.tls.client_ca_file, Some(PathBuf::from("/etc/steplab/tls/clients.crt")));
    assert_eq!(c.targets.content_url, "https://127.0.0.1:6000");
    assert_eq!(c.targets.payments_url, "https://127.0.0.1:50053");
    // An explicit URL is kept as given; a CA alone only affects clients.
    let c = config(&[cert, key, ("STEPLAB_PAYMENTS_URL", "https://payments.steplab.svc:50053")]).expect("url");
    assert_eq!(c.targets.payments_url, "https://payments.steplab.svc:50053");
    let c = config(&[ca]).expect("ca alone");
    assert!(!c.tls.serves_tls());
    assert_eq!(c.targets.content_url, "http://127.0.0.1:50052");
    assert_eq!(TlsFiles::from_lookup(|k| (k == cert.0).then(|| cert.1.to_owned())).expect_err("alone").variable, key.0);
}

#[test]
fn token_lifetime_and_clock_skew_default_to_a_day_and_a_minute_and_refuse_nonsense() {
    let c = config(&[]).expect("defaults");
    assert_eq!(c.auth.token_time_limits.max_lifetime, Duration::from_secs(86_400));
    assert_eq!(c.auth.token_time_limits.clock_skew, Duration::from_secs(60));
    let c = config(&[("STEPLAB_TOKEN_MAX_LIFETIME_SECONDS", "900"), ("STEPLAB_TOKEN_CLOCK_SKEW_SECONDS", "0")])
        .expect("valid");
    assert_eq!(c.auth.token_time_limits.max_lifetime, Duration::from_secs(900));
    assert_eq!(c.auth.token_time_limits.clock_skew, Duration::ZERO);
    for (var, value) in [
        ("STEPLAB_TOKEN_MAX_LIFETIME_SECONDS", "0"),
        ("STEPLAB_TOKEN_MAX_LIFETIME_SECONDS", "24h"),
        ("STEPLAB_TOKEN_MAX_LIFETIME_SECONDS", "31536000"),
        ("STEPLAB_TOKEN_CLOCK_SKEW_SECONDS", "-1"),
        ("STEPLAB_TOKEN_CLOCK_SKEW_SECONDS", "86400"),
    ] {
        let err = config(&[(var, value)]).expect_err(value);
        assert_eq!(err.variable, var, "{err}");
    }
}

#[test]
fn a_postgres_password_is_never_printed() {
    let url = DatabaseUrl::parse("V", "postgres://app:hunter2@db:5432/p").expect("valid");
    assert!(!format!("{url:?}").contains("hunter2"));
}

#[test]
fn a_pinned_today_and_json_logs_are_read() {
    let c = config(&[("STEPLAB_TODAY", "2026-09-01"), ("STEPLAB_LOG_FORMAT", "json")]).expect("valid");
    assert_eq!(c.clock.today, NaiveDate::from_ymd_opt(2026, 9, 1));
    assert_eq!(c.process.log_format, LogFormat::Json);
}

#[test]
fn identity_provider_variables_come_together_or_name_the_missing_one() {
    let jwks = ("STEPLAB_JWKS_FILE", "/etc/steplab/jwt/jwks.json");
    let pem = ("STEPLAB_JWT_PUBLIC_KEY_FILE", "/etc/steplab/jwt/public.pem");
    let iss = ("STEPLAB_JWT_ISSUER", "https://idp.example/realms/steplab");
    let aud = ("STEPLAB_JWT_AUDIENCE", "steplab-api");
    assert_eq!(config(&[jwks]).expect_err("no issuer").variable, "STEPLAB_JWT_ISSUER");
    assert_eq!(config(&[pem, iss]).expect_err("no audience").variable, "STEPLAB_JWT_AUDIENCE");
    assert_eq!(config(&[iss, aud]).expect_err("no keys").variable, "STEPLAB_JWT_ISSUER");
    assert_eq!(config(&[aud]).expect_err("no keys").variable, "STEPLAB_JWT_AUDIENCE");

    let c = config(&[
        jwks,
        iss,
        aud,
        ("STEPLAB_SERVICE_TOKEN_FILE", "/etc/steplab/service-token/token"),
        ("STEPLAB_PAGE_TOKEN_SECRET_FILE", "/etc/steplab/page-tokens/secret"),
    ])
    .expect("valid");
    // Every replica signs page tokens with the same mounted secret.
    assert_eq!(c.auth.page_token_secret_file, Some(PathBuf::from("/etc/steplab/page-tokens/secret")));
    let idp = c.auth.identity_provider.clone().expect("idp");
    assert_eq!(idp.jwks_file, Some(PathBuf::from("/etc/steplab/jwt/jwks.json")));
    assert_eq!(idp.audience, "steplab-api");
    assert_eq!(c.auth.service_token_file, Some(PathBuf::from("/etc/steplab/service-token/token")));
    // No STEPLAB_JWT_SECRET with a provider: no HS256 tokens at all.
    assert_eq!(c.auth.hs256_secret(), None);
    let both = config(&[jwks, iss, aud, ("STEPLAB_JWT_SECRET", "0123456789abcdef0123456789abcdef")]).expect("valid");
    assert!(matches!(both.auth.hs256_secret(), Some(JwtSecretSource::Value(_))));
    // Without a provider, the dev secret file as before.
    assert!(matches!(config(&[]).expect("dev").auth.hs256_secret(), Some(JwtSecretSource::File(_))));
}

#[test]
fn the_blocks_declare_each_variable_once_and_every_service_variable_they_build() {
    command::<Environment>().debug_assert();
    let declared = variables();
    let unique: BTreeSet<&String> = declared.iter().collect();
    assert_eq!(unique.len(), declared.len(), "a variable declared twice: {declared:?}");
    for name in ServiceName::ALL {
        for variable in [name.database_variable(), name.listen_variable()] {
            assert!(declared.contains(&variable), "{variable} is not declared");
        }
    }
    assert!(declared.iter().all(|v| v.starts_with("STEPLAB_")), "{declared:?}");
}

#[test]
fn the_lookup_alone_is_read_never_the_process_environment() {
    // Whatever the process environment holds, an empty lookup is the defaults.
    let c = config(&[]).expect("defaults");
    assert_eq!(c.limits, Limits::default());
    assert_eq!(c.data_dir, PathBuf::from("./data"));
    // Values with a leading dash, an equals sign or spaces reach the blocks as given.
    let err = config(&[("STEPLAB_MAX_CONCURRENT_REQUESTS", "-1")]).expect_err("-1");
    assert_eq!(err.to_string(), "STEPLAB_MAX_CONCURRENT_REQUESTS: `-1` is not a whole number from 1 to 1000000");
    let c = config(&[("STEPLAB_DATA_DIR", "/tmp/a=b c")]).expect("data dir");
    assert_eq!(c.data_dir, PathBuf::from("/tmp/a=b c"));
    // A blank variable is unset, except the secret, which is then too short.
    assert_eq!(config(&[("STEPLAB_LOG_FORMAT", "  ")]).expect("blank").process.log_format, LogFormat::Text);
    assert_eq!(config(&[("STEPLAB_JWT_SECRET", "")]).expect_err("empty secret").variable, "STEPLAB_JWT_SECRET");
}

#[test]
fn each_service_gets_its_own_listener_and_database() {
    let c = config(&[("STEPLAB_DATA_DIR", "/tmp/x")]).expect("defaults");
    let payments = c.payments_config();
    assert_eq!(payments.serving.service.database, DatabaseUrl::Sqlite("/tmp/x/payments.sqlite3".into()));
    assert_eq!(payments.dfe_gateway_url, "http://127.0.0.1:50054");
    let gateway = c.dfe_gateway_config();
    assert_eq!(gateway.serving.service.listen.port(), 50054);
    assert_eq!(gateway.payments_url, "http://127.0.0.1:50053");
    assert_eq!(c.participant_config().serving.service.listen.port(), 50051);
    assert_eq!(c.content_release_config().serving.service.listen.port(), 50052);
}
