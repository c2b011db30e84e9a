//! Optional TLS (issue 9, item 3): the whole stack over TLS, certificates
//! from files. A CA and a server certificate for 127.0.0.1 and localhost are
//! made at test time (rcgen) in a temporary directory. Every test here needs
//! TLS to be there: the stack's own clients, the relay and the consistency
//! check's reads all go over `https://`, and a plaintext or untrusting client
//! must be refused.

// Test helpers fail the test that called them.
#![allow(clippy::panic)]

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use std::error::Error as _;
use std::path::{Path, PathBuf};
use std::time::Duration;
use steplab_platform::auth::Role;
use steplab_platform::config::{Config, ServiceName, TlsFiles};
use steplab_platform::tls::ClientTls;
use steplab_proto::steplab::common::v1::{DeferralReason, ParticipantKind};
use steplab_proto::steplab::content::v1 as content;
use steplab_proto::steplab::participant::v1 as pb;
use steplab_proto::steplab::participant::v1::participant_service_client::ParticipantServiceClient;
use steplab_proto::steplab::payments::v1 as payments;
use steplab_tests::fixtures::{date, register, registration, world};
use steplab_tests::{Backend, Stack, TODAY, tls_channel, wait_until_delivered};
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};

/// PEM files in a temporary directory: a CA, a server certificate and key it
/// signed (valid for 127.0.0.1 and localhost, for server and client auth),
/// and a second, unrelated CA with a certificate of its own.
struct Pki {
    _dir: tempfile::TempDir,
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    other_ca: PathBuf,
    other_cert: PathBuf,
    other_key: PathBuf,
    dir: PathBuf,
}

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    CertifiedIssuer::self_signed(params, KeyPair::generate().expect("ca key")).expect("ca certificate")
}

/// A certificate for 127.0.0.1 and localhost signed by `issuer`: (cert, key) PEM.
fn leaf(issuer: &CertifiedIssuer<'static, KeyPair>) -> (String, String) {
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).expect("leaf params");
    params.distinguished_name.push(DnType::CommonName, "steplab");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    let key = KeyPair::generate().expect("leaf key");
    let cert = params.signed_by(&key, issuer).expect("leaf certificate");
    (cert.pem(), key.serialize_pem())
}

fn pki() -> Pki {
    let dir = tempfile::tempdir().expect("temp dir");
    let write = |name: &str, text: &str| -> PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write pem");
        path
    };
    let authority = ca("Steplab test CA");
    let (cert, key) = leaf(&authority);
    let other_authority = ca("Someone else's CA");
    let (other_cert, other_key) = leaf(&other_authority);
    Pki {
        ca: write("ca.pem", &authority.pem()),
        cert: write("server.pem", &cert),
        key: write("server-key.pem", &key),
        other_ca: write("other-ca.pem", &other_authority.pem()),
        other_cert: write("other.pem", &other_cert),
        other_key: write("other-key.pem", &other_key),
        dir: dir.path().to_owned(),
        _dir: dir,
    }
}

fn s(path: &Path) -> String {
    path.display().to_string()
}

/// The settings that turn TLS on for a harness stack, the relay trusting the CA.
fn tls_settings(pki: &Pki) -> Vec<(&'static str, String)> {
    vec![
        ("STEPLAB_TLS_CERT_FILE", s(&pki.cert)),
        ("STEPLAB_TLS_KEY_FILE", s(&pki.key)),
        ("STEPLAB_TLS_CA_FILE", s(&pki.ca)),
    ]
}

async fn tls_stack(backend: Backend, settings: &[(&'static str, String)]) -> Option<Stack> {
    let settings: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let stack = Stack::start_with(backend, TODAY, &settings).await?;
    assert!(stack.client_tls.is_some(), "the harness connects over TLS");
    assert!(stack.config.targets.content_url.starts_with("https://"), "{}", stack.config.targets.content_url);
    assert!(stack.config.targets.payments_url.starts_with("https://"), "{}", stack.config.targets.payments_url);
    Some(stack)
}

fn client_tls(ca: Option<&Path>, cert_and_key: Option<(&Path, &Path)>) -> ClientTls {
    ClientTls::from_files(&TlsFiles {
        cert_file: cert_and_key.map(|(c, _)| c.to_owned()),
        key_file: cert_and_key.map(|(_, k)| k.to_owned()),
        ca_file: ca.map(Path::to_owned),
        client_ca_file: None,
    })
    .expect("client TLS files")
}

/// `grpc.health.v1.Health/Check` for the whole server over `tls`, or the
/// reason it failed (at connect or at the call).
async fn health_over(addr: std::net::SocketAddr, tls: &ClientTls) -> Result<ServingStatus, String> {
    let channel = tls_channel(addr, tls).await?;
    let answer = HealthClient::new(channel)
        .check(HealthCheckRequest { service: String::new() })
        .await
        .map_err(|s| format!("{:?}: {}", s.code(), s.message()))?;
    ServingStatus::try_from(answer.into_inner().status).map_err(|e| e.to_string())
}

async fn participant_count(stack: &Stack) -> usize {
    let admin = stack.admin_token();
    stack
        .participants(Some(&admin))
        .await
        .list_participants(pb::ListParticipantsRequest::default())
        .await
        .expect("list over TLS")
        .into_inner()
        .participants
        .len()
}

/// An ECT registered and deferred over TLS: the relay delivers the hold and
/// the suspension to content release and payments over https, and the
/// consistency check reads both of them over https.
async fn the_stack_runs_over_tls(backend: Backend) {
    let pki = pki();
    let Some(stack) = tls_stack(backend, &tls_settings(&pki)).await else { return };
    let w = world(&stack).await;
    let ect = register(&stack, &w.dp1, registration(&w.school_a, ParticipantKind::Ect, "4100001", date(2026, 9, 1)))
        .await
        .participant_id;
    let lead = stack.token(Role::EcfLead, None, &[&w.dp1]);
    stack
        .participants(Some(&lead))
        .await
        .defer_participant(pb::DeferParticipantRequest {
            validate_only: false,
            participant_id: ect.clone(),
            reason: DeferralReason::LongTermSickness as i32,
            deferral_date: date(2026, 12, 1),
            expected_return_date: date(2027, 7, 1),
            note: String::new(),
            idempotency_key: String::new(),
        })
        .await
        .expect("deferred over TLS");
    wait_until_delivered(&stack, Duration::from_secs(30)).await;

    let service = stack.token(Role::Service, None, &[]);
    let state = stack
        .content(Some(&service))
        .await
        .get_release_state(content::GetReleaseStateRequest { participant_id: ect.clone(), as_of: date(2027, 2, 1) })
        .await
        .expect("release state over TLS")
        .into_inner();
    assert_eq!(state.active_holds.len(), 1, "{:?}", state.active_holds);
    assert_eq!(state.active_holds[0].kind, content::HoldKind::Deferral as i32);
    assert_eq!(state.active_holds[0].until, date(2027, 7, 1));
    let accrual = stack
        .payments(Some(&service))
        .await
        .get_accrual(payments::GetAccrualRequest { participant_id: ect.clone(), as_of: date(2027, 2, 1) })
        .await
        .expect("accrual over TLS")
        .into_inner();
    assert_eq!(accrual.state, payments::AccrualState::Suspended as i32);
    assert_eq!(accrual.suspension.expect("suspension").until, date(2027, 7, 1));

    // The consistency check reads content release and payments itself (over https).
    let admin = stack.admin_token();
    let check = stack
        .participants(Some(&admin))
        .await
        .check_consistency(pb::CheckConsistencyRequest::default())
        .await
        .expect("consistency check over TLS")
        .into_inner();
    assert_eq!(check.checked_count, 1);
    assert!(check.drifted.is_empty() && check.in_flight.is_empty(), "{check:?}");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stack_runs_over_tls_on_sqlite() {
    the_stack_runs_over_tls(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stack_runs_over_tls_on_postgres() {
    the_stack_runs_over_tls(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plaintext_client_is_refused_and_changes_nothing() {
    let pki = pki();
    let stack = tls_stack(Backend::Sqlite, &tls_settings(&pki)).await.expect("sqlite stack");
    let w = world(&stack).await;
    assert_eq!(participant_count(&stack).await, 0);
    let lead = stack.token(Role::EcfLead, None, &[&w.dp1]);
    for addr in [stack.participant_addr, stack.content_addr, stack.payments_addr] {
        // Connecting may or may not fail at once; the call must.
        let plain = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .expect("uri")
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(5))
            .connect_lazy();
        let mut request =
            tonic::Request::new(registration(&w.school_a, ParticipantKind::Ect, "4100002", date(2026, 9, 1)));
        request.metadata_mut().insert("authorization", format!("Bearer {lead}").parse().expect("ascii"));
        let refused = ParticipantServiceClient::new(plain.clone())
            .register_participant(request)
            .await
            .expect_err("plaintext is refused");
        // The server drops the connection at the failed handshake: the client
        // sees a transport error (UNAVAILABLE, UNKNOWN or CANCELLED by timing),
        // never an answer from the service.
        assert!(refused.source().is_some() || refused.code() == tonic::Code::Unavailable, "{refused:?}");
        // Health and reflection share the port: no plaintext there either.
        let health = HealthClient::new(plain).check(HealthCheckRequest { service: String::new() }).await;
        assert!(health.is_err(), "plaintext health on {addr} answered {health:?}");
        let answer = steplab::check_health(&addr.to_string(), "", Duration::from_secs(3)).await;
        assert!(matches!(answer, steplab::Health::Unreachable(_)), "{answer:?}");
    }
    // Nothing was registered, and the same registration over TLS is the first.
    assert_eq!(participant_count(&stack).await, 0);
    register(&stack, &w.dp1, registration(&w.school_a, ParticipantKind::Ect, "4100002", date(2026, 9, 1))).await;
    assert_eq!(participant_count(&stack).await, 1);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_does_not_trust_the_ca_is_refused() {
    let pki = pki();
    let stack = tls_stack(Backend::Sqlite, &tls_settings(&pki)).await.expect("sqlite stack");
    let trusting = client_tls(Some(&pki.ca), None);
    assert_eq!(health_over(stack.participant_addr, &trusting).await, Ok(ServingStatus::Serving));
    // Another CA, and the public (webpki) roots, do not vouch for the server.
    for (what, tls) in [("another CA", client_tls(Some(&pki.other_ca), None)), ("webpki roots", ClientTls::default())] {
        let refused = health_over(stack.participant_addr, &tls).await.expect_err(what);
        assert!(refused.contains("certificate") || refused.contains("UnknownIssuer"), "{what}: {refused}");
    }
    // The right CA, but the certificate checked for a name it does not carry.
    let wrong_name = trusting
        .endpoint(&format!("https://{}", stack.participant_addr), Some("payments.example"))
        .expect("endpoint")
        .connect()
        .await
        .expect_err("a certificate for 127.0.0.1 and localhost is not one for payments.example");
    let why = steplab_platform::tls::error_chain(&wrong_name);
    assert!(why.contains("NotValidForName") || why.contains("not valid for"), "{why}");
    // ... and for a name it does carry.
    let by_name = trusting
        .endpoint(&format!("https://{}", stack.participant_addr), Some("localhost"))
        .expect("endpoint")
        .connect()
        .await
        .expect("localhost is on the certificate");
    let answer = HealthClient::new(by_name).check(HealthCheckRequest { service: String::new() }).await;
    assert_eq!(answer.expect("health").into_inner().status, ServingStatus::Serving as i32);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_answers_over_tls() {
    let pki = pki();
    let stack = tls_stack(Backend::Sqlite, &tls_settings(&pki)).await.expect("sqlite stack");
    let tls = client_tls(Some(&pki.ca), None);
    let timeout = Duration::from_secs(3);
    for (name, addr) in [
        (ServiceName::Participant, stack.participant_addr),
        (ServiceName::ContentRelease, stack.content_addr),
        (ServiceName::Payments, stack.payments_addr),
        (ServiceName::DfeGateway, stack.dfe_gateway_addr),
    ] {
        let addr = addr.to_string();
        for service in ["", steplab::grpc_service_name(name)] {
            let answer = steplab::check_health_over(&addr, service, timeout, Some(&tls), None).await;
            assert_eq!(answer, steplab::Health::Serving, "{} `{service}` over TLS", name.as_str());
        }
        let by_name = steplab::check_health_over(&addr, "", timeout, Some(&tls), Some("localhost")).await;
        assert_eq!(by_name, steplab::Health::Serving);
        let plain = steplab::check_health(&addr, "", timeout).await;
        assert!(matches!(plain, steplab::Health::Unreachable(_)), "plaintext health: {plain:?}");
        let untrusting = client_tls(Some(&pki.other_ca), None);
        let refused = steplab::check_health_over(&addr, "", timeout, Some(&untrusting), None).await;
        assert!(matches!(refused, steplab::Health::Unreachable(_)), "{refused:?}");
    }
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_refuses_a_client_without_a_certificate_from_the_client_ca() {
    let pki = pki();
    let mut settings = tls_settings(&pki);
    settings.push(("STEPLAB_TLS_CLIENT_CA_FILE", s(&pki.ca)));
    let stack = tls_stack(Backend::Sqlite, &settings).await.expect("sqlite stack");
    // The harness and the relay present the certificate; it is signed by the client CA.
    let w = world(&stack).await;
    let ect = register(&stack, &w.dp1, registration(&w.school_a, ParticipantKind::Ect, "4200001", date(2026, 9, 1)))
        .await
        .participant_id;
    wait_until_delivered(&stack, Duration::from_secs(30)).await;
    let service = stack.token(Role::Service, None, &[]);
    stack
        .payments(Some(&service))
        .await
        .get_accrual(payments::GetAccrualRequest { participant_id: ect, as_of: date(2027, 2, 1) })
        .await
        .expect("the relay delivered the registration over mutual TLS");

    let with_certificate = client_tls(Some(&pki.ca), Some((&pki.cert, &pki.key)));
    assert_eq!(health_over(stack.content_addr, &with_certificate).await, Ok(ServingStatus::Serving));
    for (what, tls) in [
        ("no client certificate", client_tls(Some(&pki.ca), None)),
        ("a certificate from another CA", client_tls(Some(&pki.ca), Some((&pki.other_cert, &pki.other_key)))),
    ] {
        let refused = health_over(stack.content_addr, &tls).await.expect_err(what);
        assert!(!refused.is_empty(), "{what}");
    }
    stack.stop().await;
}

fn config(settings: &[(&str, String)]) -> Result<Config, steplab_platform::config::ConfigError> {
    Config::from_lookup(|k| settings.iter().find(|(name, _)| *name == k).map(|(_, v)| v.clone()))
}

/// Runs one service with `settings` and returns its start-up error.
async fn start_up_error(name: ServiceName, settings: &[(&str, String)]) -> String {
    let data = tempfile::tempdir().expect("data dir");
    let mut settings = settings.to_vec();
    settings.push(("STEPLAB_DATA_DIR", s(data.path())));
    settings.push(("STEPLAB_JWT_SECRET", steplab_tests::SECRET.to_owned()));
    let config = config(&settings).expect("the variables themselves are valid");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let run = async {
        match name {
            ServiceName::Participant => {
                steplab_participant::run(config.participant_config(), listener, std::future::pending()).await
            }
            ServiceName::ContentRelease => {
                steplab_content_release::run(config.content_release_config(), listener, std::future::pending()).await
            }
            ServiceName::Payments => {
                steplab_payments::run(config.payments_config(), listener, std::future::pending()).await
            }
            ServiceName::DfeGateway => {
                steplab_dfe_gateway::run(config.dfe_gateway_config(), listener, std::future::pending()).await
            }
        }
    };
    match tokio::time::timeout(Duration::from_secs(30), run).await {
        Ok(Err(e)) => format!("{e:#}"),
        Ok(Ok(())) => panic!("{} started", name.as_str()),
        Err(_) => panic!("{} served instead of refusing to start", name.as_str()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tls_configuration_stops_start_up_naming_the_variable() {
    let pki = pki();
    // A certificate without its key (and the reverse) is a configuration error naming both.
    let err = config(&[("STEPLAB_TLS_CERT_FILE", s(&pki.cert))]).expect_err("cert alone");
    assert_eq!(err.variable, "STEPLAB_TLS_KEY_FILE");
    assert!(err.to_string().contains("STEPLAB_TLS_CERT_FILE"), "{err}");
    let err = config(&[("STEPLAB_TLS_KEY_FILE", s(&pki.key))]).expect_err("key alone");
    assert_eq!(err.variable, "STEPLAB_TLS_CERT_FILE");

    // An unreadable certificate file: the service does not start, and says which file.
    let missing = pki.dir.join("missing.pem");
    let err = start_up_error(
        ServiceName::Payments,
        &[("STEPLAB_TLS_CERT_FILE", s(&missing)), ("STEPLAB_TLS_KEY_FILE", s(&pki.key))],
    )
    .await;
    assert!(err.contains("STEPLAB_TLS_CERT_FILE") && err.contains(&s(&missing)), "{err}");

    // A key that is not the certificate's.
    let err = start_up_error(
        ServiceName::ContentRelease,
        &[("STEPLAB_TLS_CERT_FILE", s(&pki.cert)), ("STEPLAB_TLS_KEY_FILE", s(&pki.other_key))],
    )
    .await;
    assert!(err.contains("STEPLAB_TLS_KEY_FILE") && err.contains(&s(&pki.other_key)), "{err}");

    // A CA file that holds no certificate: the participant service (whose
    // relay would trust it) refuses to start rather than fail every delivery.
    let err = start_up_error(
        ServiceName::Participant,
        &[
            ("STEPLAB_TLS_CERT_FILE", s(&pki.cert)),
            ("STEPLAB_TLS_KEY_FILE", s(&pki.key)),
            ("STEPLAB_TLS_CA_FILE", s(&pki.key)),
        ],
    )
    .await;
    assert!(err.contains("STEPLAB_TLS_CA_FILE") && err.contains(&s(&pki.key)), "{err}");
}

/// Issue 14: over TLS the handshake timeout bounds the TLS handshake (here a
/// client that connects and never sends its ClientHello), while a client
/// that completes it is served through the same connection limits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_tls_handshake_is_closed_after_the_handshake_timeout() {
    use tokio::io::AsyncReadExt;
    let pki = pki();
    let mut settings = tls_settings(&pki);
    settings.push(("STEPLAB_HANDSHAKE_TIMEOUT_SECONDS", "1".into()));
    let stack = tls_stack(Backend::Sqlite, &settings).await.expect("sqlite stack");
    let mut silent = tokio::net::TcpStream::connect(stack.participant_addr).await.expect("connect");
    let started = std::time::Instant::now();
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(5), silent.read(&mut buf)).await;
    let elapsed = started.elapsed();
    println!("a TLS connection without a ClientHello was closed after {elapsed:?}");
    assert!(matches!(read, Ok(Ok(0) | Err(_))), "still open after 5 s: {read:?}");
    assert!(elapsed >= Duration::from_millis(800), "not before the timeout: {elapsed:?}");
    let tls = client_tls(Some(&pki.ca), None);
    assert_eq!(health_over(stack.participant_addr, &tls).await, Ok(ServingStatus::Serving));
    stack.stop().await;
}
