//! The container image, the compose file and the Kubernetes manifests,
//! checked against the code, since no Docker engine or cluster runs here:
//! ports and probe ports are the ports the services listen on (as
//! `Config::from_lookup` computes them from the very environment a container
//! gets), every variable the configuration's blocks declare is set or has
//! a default, every Secret and ConfigMap reference resolves in the production
//! overlay, every command is one the `steplab` command's own parser accepts,
//! and the NetworkPolicies let only participant pods reach the other two.
//!
//! The overlay is rendered by a small kustomize subset (resources, namespace,
//! images, configMap/secret generators); anything else in a kustomization
//! fails the test, so a new feature has to be taught here before it is used.

// Test code: a manifest that does not match fails the test with a message.
#![allow(clippy::panic)]

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;
use steplab::Command;
use steplab_platform::config::{Config, ServiceName};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Every YAML document of a file (YAML merge keys applied), as JSON values.
fn yaml_documents(path: &Path) -> Vec<Value> {
    use serde::Deserialize;
    let text = read(path);
    let mut documents = Vec::new();
    for document in serde_norway::Deserializer::from_str(&text) {
        let mut value = serde_norway::Value::deserialize(document)
            .unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", path.display()));
        value.apply_merge().unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if !value.is_null() {
            documents.push(serde_json::to_value(value).unwrap_or_else(|e| panic!("{}: {e}", path.display())));
        }
    }
    documents
}

fn yaml(path: &Path) -> Value {
    let mut documents = yaml_documents(path);
    assert_eq!(documents.len(), 1, "{} holds one document", path.display());
    documents.remove(0)
}

fn text(value: &Value, what: &str) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => panic!("{what}: expected a scalar, found {other}"),
    }
}

fn number(value: &Value, what: &str) -> i64 {
    value.as_i64().unwrap_or_else(|| panic!("{what}: expected a number, found {value}"))
}

fn strings(value: &Value, what: &str) -> Vec<String> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("{what}: expected a list, found {value}"))
        .iter()
        .map(|v| text(v, what))
        .collect()
}

fn labels(value: &Value) -> BTreeMap<String, String> {
    value.as_object().map(|m| m.iter().map(|(k, v)| (k.clone(), text(v, k))).collect()).unwrap_or_default()
}

type Env = BTreeMap<String, String>;

fn config_from(env: &Env) -> Result<Config, String> {
    Config::from_lookup(|k| env.get(k).cloned()).map_err(|e| e.to_string())
}

/// The `steplab` command a container runs, parsed by the binary's own parser.
fn parse(args: &[String], what: &str) -> Command {
    steplab::parse_command(args.iter().map(String::as_str))
        .unwrap_or_else(|e| panic!("{what}: `{}` is not a steplab command: {e}", args.join(" ")))
}

fn serves(command: &Command, what: &str) -> ServiceName {
    match command {
        Command::Serve { service } => *service,
        other => panic!("{what}: runs {other:?}, not `serve <service>`"),
    }
}

// ---------------------------------------------------------------------------
// What the code reads

/// Every `STEPLAB_*` variable the configuration's blocks declare.
fn config_variables() -> BTreeSet<String> {
    let variables: BTreeSet<String> = steplab_platform::config::variables().into_iter().collect();
    for expected in ["STEPLAB_JWT_SECRET", "STEPLAB_JWKS_FILE", "STEPLAB_PARTICIPANT_DATABASE_URL", "STEPLAB_TODAY"] {
        assert!(variables.contains(expected), "the configuration declares {variables:?}");
    }
    variables
}

/// Every variable is set in `env` or has a default (the configuration is
/// still valid without it), and `env` sets no variable the code never reads.
fn check_variables(env: &Env, what: &str) {
    let known = config_variables();
    for variable in env.keys().filter(|k| k.starts_with("STEPLAB_")) {
        assert!(known.contains(variable), "{what} sets {variable}, which the configuration never reads (a typo?)");
    }
    config_from(env).unwrap_or_else(|e| panic!("{what}: the services would not start: {e}"));
    for variable in &known {
        if env.contains_key(variable) {
            continue;
        }
        let mut without = env.clone();
        without.remove(variable);
        assert!(config_from(&without).is_ok(), "{what}: {variable} is neither set nor has a default");
    }
}

// ---------------------------------------------------------------------------
// docker/Dockerfile

struct Image {
    env: Env,
    entrypoint: Vec<String>,
    cmd: Vec<String>,
    exposed: BTreeSet<u16>,
    user: u32,
}

fn dockerfile() -> (String, Image) {
    let source = read(&root().join("docker/Dockerfile"));
    // Join continuation lines, drop comments.
    let mut instructions: Vec<String> = Vec::new();
    let mut current = String::new();
    for line in source.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(part) => {
                current.push_str(part);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                instructions.push(std::mem::take(&mut current));
            }
        }
    }
    // The runtime stage is the last one.
    let last_from = instructions.iter().rposition(|i| i.starts_with("FROM ")).expect("a FROM");
    let runtime = &instructions[last_from..];
    let json = |i: &str, keyword: &str| -> Vec<String> {
        serde_json::from_str(i.trim_start_matches(keyword).trim())
            .unwrap_or_else(|e| panic!("{keyword} in exec (JSON) form: {i}: {e}"))
    };
    let mut image = Image { env: Env::new(), entrypoint: vec![], cmd: vec![], exposed: BTreeSet::new(), user: 0 };
    for instruction in runtime {
        if let Some(rest) = instruction.strip_prefix("ENV ") {
            for pair in rest.split_whitespace() {
                let (k, v) = pair.split_once('=').unwrap_or_else(|| panic!("ENV {pair}: use KEY=VALUE"));
                image.env.insert(k.to_owned(), v.to_owned());
            }
        } else if instruction.starts_with("ENTRYPOINT ") {
            image.entrypoint = json(instruction, "ENTRYPOINT");
        } else if instruction.starts_with("CMD ") {
            image.cmd = json(instruction, "CMD");
        } else if let Some(rest) = instruction.strip_prefix("EXPOSE ") {
            image.exposed = rest.split_whitespace().map(|p| p.parse().expect("EXPOSE port")).collect();
        } else if let Some(rest) = instruction.strip_prefix("USER ") {
            let uid = rest.split(':').next().unwrap_or_default();
            image.user = uid.parse().unwrap_or_else(|_| panic!("USER {rest}: numeric, so runAsNonRoot can check it"));
        }
    }
    (instructions.join("\n"), image)
}

#[test]
fn the_dockerfile_builds_steplab_once_on_cached_dependencies_and_runs_it_unprivileged() {
    let (instructions, image) = dockerfile();
    let lines: Vec<&str> = instructions.lines().collect();
    let builds: Vec<&&str> = lines.iter().filter(|l| l.contains("cargo build")).collect();
    assert_eq!(builds.len(), 1, "the binary is built once: {builds:?}");
    assert!(builds[0].contains("--locked") && builds[0].contains("--release") && builds[0].contains("--bin steplab"));
    let position = |needle: &str| lines.iter().position(|l| l.contains(needle)).unwrap_or_else(|| panic!("{needle}"));
    let cook = position("cargo chef cook");
    assert!(lines[position("cargo chef prepare")].contains("recipe.json"));
    let source_copy = lines.iter().enumerate().skip(cook).find(|(_, l)| l.starts_with("COPY . .")).map(|(i, _)| i);
    assert!(
        source_copy.is_some_and(|copy| copy < position("cargo build")),
        "dependencies are cooked before the sources are copied"
    );

    let runtime_from = lines.iter().rposition(|l| l.starts_with("FROM ")).expect("runtime stage");
    assert!(lines[runtime_from].contains("-slim"), "a slim runtime image: {}", lines[runtime_from]);
    let install = lines[runtime_from..].iter().find(|l| l.contains("apt-get install")).expect("runtime packages");
    let packages: BTreeSet<&str> = install
        .split("apt-get install")
        .nth(1)
        .unwrap_or_default()
        .split_whitespace()
        .take_while(|w| *w != "&&")
        .filter(|w| !w.starts_with('-'))
        .collect();
    assert_eq!(packages, BTreeSet::from(["ca-certificates", "libpq5"]), "only what the binary needs");
    assert!(image.user >= 1000, "runs as an unprivileged user, not {}", image.user);

    assert_eq!(image.entrypoint, ["steplab"]);
    let mut default = image.entrypoint.clone();
    default.extend(image.cmd.clone());
    serves(&parse(&default, "the image's CMD"), "the image's CMD");
    let config = config_from(&image.env).expect("the image's ENV is a valid configuration");
    for service in ServiceName::ALL {
        let listen = config.service(service).listen;
        assert!(listen.ip().is_unspecified(), "{} listens on every interface in a container", service.as_str());
        assert_eq!(listen.port(), service.default_port());
        assert!(image.exposed.contains(&listen.port()), "EXPOSE {}", listen.port());
    }
}

// ---------------------------------------------------------------------------
// docker/compose.yaml

/// Compose's `${NAME:-default}` interpolation, with the defaults.
fn interpolate(raw: &str) -> String {
    let mut out = String::new();
    let mut rest = raw;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').map(|e| start + e).expect("closing brace");
        let inner = &rest[start + 2..end];
        let (_, default) = inner.split_once(":-").unwrap_or_else(|| panic!("${{{inner}}} needs a :-default"));
        out.push_str(default);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

fn compose_environment(service: &Value, what: &str) -> Env {
    match &service["environment"] {
        Value::Object(map) => map.iter().map(|(k, v)| (k.clone(), interpolate(&text(v, k)))).collect(),
        Value::Null => Env::new(),
        other => panic!("{what}: environment as a map, not {other}"),
    }
}

#[test]
fn compose_wires_the_four_services_to_their_databases_and_each_other() {
    let compose = yaml(&root().join("docker/compose.yaml"));
    let (_, image) = dockerfile();
    let services = compose["services"].as_object().expect("services");
    let init_script = read(&root().join("docker/postgres-init/10-steplab-databases.sh"));
    let postgres = &services["postgres"];
    assert!(postgres["healthcheck"]["test"].is_array(), "PostgreSQL is health-checked");
    let mounts = strings(&postgres["volumes"], "postgres volumes");
    assert!(mounts.iter().any(|m| m.starts_with("./postgres-init:/docker-entrypoint-initdb.d")), "{mounts:?}");

    let mut listen_ports = BTreeMap::new();
    let mut configs = BTreeMap::new();
    for service in ServiceName::ALL {
        let name = service.as_str();
        let spec = services.get(name).unwrap_or_else(|| panic!("compose has a `{name}` service"));
        assert_eq!(text(&spec["build"]["dockerfile"], "build.dockerfile"), "docker/Dockerfile");
        let mut args = image.entrypoint.clone();
        args.extend(strings(&spec["command"], "command"));
        assert_eq!(serves(&parse(&args, name), name), service, "compose `{name}` runs its own service");

        let mut env = image.env.clone();
        env.extend(compose_environment(spec, name));
        check_variables(&env, &format!("compose `{name}`"));
        let config = config_from(&env).expect("valid");
        let listen = config.service(service).listen;
        listen_ports.insert(name, listen.port());
        let ports = strings(&spec["ports"], "ports");
        assert!(
            ports.iter().any(|p| p.rsplit(':').next() == Some(&listen.port().to_string())),
            "compose `{name}` publishes its listen port {}: {ports:?}",
            listen.port()
        );

        // Its own PostgreSQL database, made by the init script.
        let url = env.get(&service.database_variable()).unwrap_or_else(|| panic!("{name} has a database URL"));
        assert!(config.service(service).database.is_postgres(), "{name} on PostgreSQL");
        let database = url.rsplit('/').next().unwrap_or_default();
        let suffix = database.strip_prefix("steplab_").unwrap_or_else(|| panic!("{database}"));
        assert!(url.contains("@postgres:5432/"), "{name} reaches the `postgres` service: {url}");
        assert!(init_script.contains(suffix), "the init script creates {database}");

        // The healthcheck is `steplab health --service <name>` on its own port.
        let test = strings(&spec["healthcheck"]["test"], "healthcheck");
        assert_eq!(&test[..2], ["CMD", "steplab"], "{name} healthcheck: {test:?}");
        match parse(&test[1..], &format!("{name} healthcheck")) {
            Command::Health { service: Some(checked), addr, .. } => {
                assert_eq!(checked, service);
                let addr = addr.unwrap_or_else(|| steplab::default_health_addr(&config, Some(checked)));
                assert!(addr.ends_with(&format!(":{}", listen.port())), "{name} healthcheck asks {addr}");
            }
            other => panic!("{name} healthcheck runs {other:?}"),
        }
        let grace = text(&spec["stop_grace_period"], "stop_grace_period");
        let grace: u64 = grace.trim_end_matches('s').parse().expect("stop_grace_period in seconds");
        assert!(
            Duration::from_secs(grace) > config.process.drain_timeout,
            "{name}: stop_grace_period above the drain bound"
        );

        let depends = spec["depends_on"].as_object().expect("depends_on");
        assert_eq!(depends["postgres"]["condition"], "service_healthy", "{name} waits for PostgreSQL");
        for (target, condition) in depends {
            assert_eq!(condition["condition"], "service_healthy", "{name} -> {target}");
            assert!(services[target]["healthcheck"].is_object(), "{target} is health-checked");
        }
        configs.insert(name, config);
    }

    // The relay's targets are the other two compose services, on their ports.
    let participant = &configs["participant"];
    let depends = services["participant"]["depends_on"].as_object().expect("depends_on");
    for (url, target) in [
        (&participant.targets.content_url, "content-release"),
        (&participant.targets.payments_url, "payments"),
        (&participant.targets.dfe_gateway_url, "dfe-gateway"),
    ] {
        assert_eq!(url, &format!("http://{target}:{}", listen_ports[target]), "participant -> {target}");
        assert!(depends.contains_key(target), "participant starts after {target}");
    }
    // The DfE gateway's relay tells payments the DfE's declaration states.
    let gateway = &configs["dfe-gateway"];
    assert_eq!(
        gateway.targets.payments_url,
        format!("http://payments:{}", listen_ports["payments"]),
        "dfe-gateway -> payments"
    );
    assert!(services["dfe-gateway"]["depends_on"].as_object().expect("depends_on").contains_key("payments"));
    // X9: the DfE sync is off by default in the local stack.
    assert_eq!(gateway.dfe.api_url, None);
}

// ---------------------------------------------------------------------------
// docker/k8s: a small kustomize

#[derive(Default)]
struct Rendered {
    resources: Vec<Value>,
    config_maps: BTreeMap<String, Env>,
    /// ConfigMap name -> keys of its generated files.
    config_map_files: BTreeMap<String, BTreeSet<String>>,
    /// Secret name -> keys, from the overlay's generators only.
    secrets: BTreeMap<String, BTreeSet<String>>,
    images: BTreeMap<String, (String, String)>,
    namespace: Option<String>,
    /// Files the secret generators read, relative to the overlay.
    secret_files: BTreeSet<String>,
}

fn render(dir: &Path, rendered: &mut Rendered) {
    let kustomization = yaml(&dir.join("kustomization.yaml"));
    let allowed = ["apiVersion", "kind", "namespace", "resources", "images", "configMapGenerator", "secretGenerator"];
    for key in kustomization.as_object().expect("kustomization").keys() {
        assert!(allowed.contains(&key.as_str()), "{}: teach manifests.rs about `{key}`", dir.display());
    }
    for resource in strings(&kustomization["resources"], "resources") {
        let path = dir.join(&resource);
        if path.is_dir() {
            render(&path, rendered);
        } else {
            rendered.resources.extend(yaml_documents(&path));
        }
    }
    if let Some(namespace) = kustomization["namespace"].as_str() {
        rendered.namespace = Some(namespace.to_owned());
    }
    for generator in kustomization["configMapGenerator"].as_array().into_iter().flatten() {
        let name = text(&generator["name"], "configMapGenerator.name");
        let behavior = generator["behavior"].as_str().unwrap_or("create");
        let literals: Env = generator["literals"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|l| text(l, "literal"))
            .map(|l| l.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())).expect("KEY=VALUE literal"))
            .collect();
        // Files (a curriculum, schedules) are mounted, not read as variables: their keys only.
        let files: BTreeSet<String> = generator["files"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|f| text(f, "files"))
            .map(|f| {
                f.split_once('=').map_or_else(|| f.rsplit('/').next().unwrap_or(&f).to_owned(), |(k, _)| k.to_owned())
            })
            .collect();
        rendered.config_map_files.entry(name.clone()).or_default().extend(files);
        match behavior {
            "create" => assert!(rendered.config_maps.insert(name.clone(), literals).is_none(), "{name} created twice"),
            "merge" => {
                rendered.config_maps.get_mut(&name).unwrap_or_else(|| panic!("merge into {name}")).extend(literals)
            }
            other => panic!("configMapGenerator behavior {other}"),
        }
    }
    for generator in kustomization["secretGenerator"].as_array().into_iter().flatten() {
        let name = text(&generator["name"], "secretGenerator.name");
        let mut keys = BTreeSet::new();
        for file in strings(&generator["files"], "files") {
            let (key, path) = file.split_once('=').unwrap_or_else(|| (file.rsplit('/').next().unwrap_or(&file), &file));
            keys.insert(key.to_owned());
            rendered.secret_files.insert(path.to_owned());
        }
        rendered.secrets.insert(name, keys);
    }
    for image in kustomization["images"].as_array().into_iter().flatten() {
        rendered.images.insert(
            text(&image["name"], "images.name"),
            (text(&image["newName"], "newName"), text(&image["newTag"], "newTag")),
        );
    }
}

fn production() -> Rendered {
    let overlay = root().join("docker/k8s/overlays/production");
    let mut rendered = Rendered::default();
    render(&overlay, &mut rendered);
    // Secrets must come from the overlay: the base has none.
    let mut base = Rendered::default();
    render(&root().join("docker/k8s/base"), &mut base);
    assert!(base.secrets.is_empty(), "Secrets belong to the overlay");
    rendered
}

fn find<'a>(rendered: &'a Rendered, kind: &str, name: &str) -> &'a Value {
    rendered
        .resources
        .iter()
        .find(|r| r["kind"] == kind && r["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} `{name}`"))
}

fn all<'a>(rendered: &'a Rendered, kind: &'a str) -> impl Iterator<Item = &'a Value> {
    rendered.resources.iter().filter(move |r| r["kind"] == kind)
}

fn selects(selector: &Value, labels: &BTreeMap<String, String>) -> bool {
    assert!(selector.get("matchExpressions").is_none(), "manifests.rs understands matchLabels only");
    let wanted = self::labels(&selector["matchLabels"]);
    wanted.iter().all(|(k, v)| labels.get(k) == Some(v))
}

fn pod_labels(deployment: &Value) -> BTreeMap<String, String> {
    labels(&deployment["spec"]["template"]["metadata"]["labels"])
}

fn container(deployment: &Value) -> &Value {
    let containers = deployment["spec"]["template"]["spec"]["containers"].as_array().expect("containers");
    assert_eq!(containers.len(), 1, "one container per pod");
    &containers[0]
}

/// A placeholder for a Secret's value: the code only checks their form.
fn secret_placeholder(variable: &str) -> String {
    if variable.ends_with("_DATABASE_URL") {
        "postgres://steplab:secret@postgres.internal:5432/steplab".into()
    } else {
        "secret-placeholder-secret-placeholder-0123456789".into()
    }
}

/// The environment a container starts with: the image's ENV, then envFrom,
/// then env (Secret values as placeholders), as the kubelet builds it.
fn container_env(rendered: &Rendered, image: &Image, container: &Value, what: &str) -> (Env, BTreeSet<String>) {
    let mut env = image.env.clone();
    let mut from_secrets = BTreeSet::new();
    for source in container["envFrom"].as_array().into_iter().flatten() {
        let name = text(&source["configMapRef"]["name"], "envFrom.configMapRef.name");
        env.extend(rendered.config_maps.get(&name).unwrap_or_else(|| panic!("{what}: no ConfigMap {name}")).clone());
    }
    for entry in container["env"].as_array().into_iter().flatten() {
        let name = text(&entry["name"], "env.name");
        if let Some(value) = entry.get("value") {
            env.insert(name, text(value, "env.value"));
        } else if let Some(secret) = entry["valueFrom"].get("secretKeyRef") {
            let secret_name = text(&secret["name"], "secretKeyRef.name");
            let key = text(&secret["key"], "secretKeyRef.key");
            let keys = rendered.secrets.get(&secret_name).unwrap_or_else(|| {
                panic!("{what}: {name} reads Secret {secret_name}, which the overlay does not define")
            });
            assert!(keys.contains(&key), "{what}: Secret {secret_name} has no key {key} (it has {keys:?})");
            env.insert(name.clone(), secret_placeholder(&name));
            from_secrets.insert(name);
        } else {
            panic!("{what}: env {name} is neither a value nor a secretKeyRef");
        }
    }
    (env, from_secrets)
}

#[test]
fn every_deployment_runs_its_service_on_its_port_with_probes_that_ask_it() {
    let rendered = production();
    let (_, image) = dockerfile();
    for service in ServiceName::ALL {
        let name = service.as_str();
        let deployment = find(&rendered, "Deployment", name);
        let spec = &deployment["spec"];
        let pod = &spec["template"]["spec"];
        let container = container(deployment);
        let what = format!("Deployment {name}");
        assert!(number(&spec["replicas"], "replicas") >= 2, "{what}: two or more replicas");
        assert!(selects(&spec["selector"], &pod_labels(deployment)), "{what}: the selector matches its pods");

        // The command: the image's entrypoint with these args.
        let image_name = text(&container["image"], "image");
        let (new_name, tag) =
            rendered.images.get(&image_name).unwrap_or_else(|| panic!("the overlay pins {image_name}"));
        assert!(!new_name.is_empty() && tag != "latest", "{what}: a released image, not {new_name}:{tag}");
        let mut args = match &container["command"] {
            Value::Null => image.entrypoint.clone(),
            command => strings(command, "command"),
        };
        assert_eq!(args, ["steplab"], "{what}: runs the steplab binary");
        args.extend(strings(&container["args"], "args"));
        assert_eq!(serves(&parse(&args, &what), &what), service, "{what} serves {name}");

        // Its configuration: valid, and listening where the ports say.
        let (env, from_secrets) = container_env(&rendered, &image, container, &what);
        check_variables(&env, &what);
        let config = config_from(&env).expect("valid");
        assert!(from_secrets.contains(&service.database_variable()), "{what}: its database URL comes from a Secret");
        let port = config.service(service).listen.port();
        let ports = container["ports"].as_array().expect("ports");
        assert!(
            ports.iter().any(|p| p["containerPort"] == port && p["name"] == "grpc"),
            "{what}: containerPort {port}"
        );

        // Native gRPC probes on that port; readiness on the service itself.
        for probe in ["startupProbe", "readinessProbe", "livenessProbe"] {
            let grpc = &container[probe]["grpc"];
            assert_eq!(number(&grpc["port"], probe) as u16, port, "{what}: {probe} on the listen port");
        }
        assert_eq!(
            text(&container["readinessProbe"]["grpc"]["service"], "readiness service"),
            steplab::grpc_service_name(service),
            "{what}: readiness asks the health status of the service it hosts"
        );

        // Shutdown: the grace period covers the preStop sleep and the drain.
        let pre_stop = strings(&container["lifecycle"]["preStop"]["exec"]["command"], "preStop");
        assert_eq!(pre_stop[0], "sleep");
        let pre_stop: u64 = pre_stop[1].parse().expect("seconds");
        let grace = number(&pod["terminationGracePeriodSeconds"], "terminationGracePeriodSeconds") as u64;
        assert!(
            Duration::from_secs(grace) > config.process.drain_timeout + Duration::from_secs(pre_stop),
            "{what}: terminationGracePeriodSeconds {grace} above preStop {pre_stop} s + drain {:?}",
            config.process.drain_timeout
        );

        // Resources and an unprivileged, read-only container.
        for kind in ["requests", "limits"] {
            for resource in ["cpu", "memory"] {
                assert!(container["resources"][kind][resource].is_string(), "{what}: {kind}.{resource}");
            }
        }
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{what}: runAsNonRoot");
        assert_eq!(number(&pod["securityContext"]["runAsUser"], "runAsUser") as u32, image.user);
        assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true, "{what}: read-only root");
        assert_eq!(container["securityContext"]["allowPrivilegeEscalation"], false);

        // Writable paths are emptyDirs; files the configuration names are mounted.
        let volumes: BTreeMap<String, &Value> =
            pod["volumes"].as_array().expect("volumes").iter().map(|v| (text(&v["name"], "volume.name"), v)).collect();
        let mounts: Vec<(String, &Value)> = container["volumeMounts"]
            .as_array()
            .expect("volumeMounts")
            .iter()
            .map(|m| {
                let volume = text(&m["name"], "volumeMount.name");
                let volume = *volumes.get(&volume).unwrap_or_else(|| panic!("{what}: no volume {volume}"));
                (text(&m["mountPath"], "mountPath"), volume)
            })
            .collect();
        for writable in [config.data_dir.display().to_string(), "/tmp".to_owned()] {
            assert!(
                mounts.iter().any(|(path, volume)| *path == writable && volume["emptyDir"].is_object()),
                "{what}: {writable} is a writable emptyDir"
            );
        }
        for (variable, value) in env.iter().filter(|(k, _)| k.ends_with("_FILE")) {
            let (dir, file) = value.rsplit_once('/').unwrap_or_else(|| panic!("{variable}={value}: an absolute path"));
            let (_, volume) = mounts
                .iter()
                .find(|(path, _)| path == dir)
                .unwrap_or_else(|| panic!("{what}: {variable}={value} is not on a mounted volume"));
            let (kind, source, keys) = if let Some(secret) = volume["secret"]["secretName"].as_str() {
                ("Secret", secret, rendered.secrets.get(secret))
            } else if let Some(map) = volume["configMap"]["name"].as_str() {
                ("ConfigMap", map, rendered.config_map_files.get(map))
            } else {
                panic!("{what}: {variable}={value} is on a volume that is neither a Secret nor a ConfigMap")
            };
            let keys = keys.unwrap_or_else(|| panic!("{what}: the overlay defines no {kind} {source}"));
            assert!(keys.contains(file), "{what}: {variable} names {file}, a key {kind} {source} lacks ({keys:?})");
        }
        for volume in volumes.values() {
            if let Some(secret) = volume["secret"]["secretName"].as_str() {
                assert!(rendered.secrets.contains_key(secret), "{what}: the overlay defines no Secret {secret}");
            }
        }

        // Production auth: the identity provider's keys, no dev secret; the
        // relay presents the operator's token.
        let idp = config
            .auth
            .identity_provider
            .as_ref()
            .unwrap_or_else(|| panic!("{what}: tokens from an identity provider"));
        assert!(!idp.issuer.is_empty() && !idp.audience.is_empty());
        assert!(config.auth.hs256_secret().is_none(), "{what}: production accepts no HS256 dev tokens");
        if matches!(service, ServiceName::Participant | ServiceName::DfeGateway) {
            assert!(config.auth.service_token_file.is_some(), "{what}: the relay needs STEPLAB_SERVICE_TOKEN_FILE");
        }
        // X9: only the gateway talks to the DfE, with its token from a Secret.
        assert_eq!(config.dfe.api_url.is_some(), service == ServiceName::DfeGateway, "{what}: STEPLAB_DFE_API_URL");
        configs_relay_targets(&rendered, service, &config);
    }
}

/// The participant's relay targets are the Services of the other two, whose
/// ports lead to the containers' listen ports.
fn configs_relay_targets(rendered: &Rendered, service: ServiceName, config: &Config) {
    let targets = match service {
        ServiceName::Participant => vec![
            (&config.targets.content_url, ServiceName::ContentRelease),
            (&config.targets.payments_url, ServiceName::Payments),
            (&config.targets.dfe_gateway_url, ServiceName::DfeGateway),
        ],
        // X5, X6: the gateway's relay sends RecordDeclarationState to payments.
        ServiceName::DfeGateway => vec![(&config.targets.payments_url, ServiceName::Payments)],
        _ => return,
    };
    for (url, target) in targets {
        let host_port = url.strip_prefix("http://").unwrap_or_else(|| panic!("{url}: plaintext inside the cluster"));
        let (host, port) = host_port.split_once(':').expect("HOST:PORT");
        assert_eq!(host, target.as_str(), "participant -> {url}: the {} Service", target.as_str());
        let k8s_service = find(rendered, "Service", host);
        let service_port = k8s_service["spec"]["ports"]
            .as_array()
            .expect("ports")
            .iter()
            .find(|p| p["port"].as_i64().map(|n| n.to_string()) == Some(port.to_owned()))
            .unwrap_or_else(|| panic!("Service {host} has no port {port}"));
        assert_eq!(service_port["targetPort"], "grpc", "Service {host} targets the named container port");
    }
}

#[test]
fn services_disruption_budgets_and_autoscalers_select_the_deployments() {
    let rendered = production();
    let (_, image) = dockerfile();
    for service in ServiceName::ALL {
        let name = service.as_str();
        let deployment = find(&rendered, "Deployment", name);
        let pods = pod_labels(deployment);
        let (env, _) = container_env(&rendered, &image, container(deployment), name);
        let port = config_from(&env).expect("valid").service(service).listen.port();

        let k8s_service = find(&rendered, "Service", name);
        let selector = serde_json::json!({"matchLabels": k8s_service["spec"]["selector"]});
        assert!(selects(&selector, &pods), "Service {name} selects its pods");
        let ports = k8s_service["spec"]["ports"].as_array().expect("ports");
        assert!(
            ports.iter().any(|p| p["port"] == port && p["targetPort"] == "grpc"),
            "Service {name} serves port {port} to the container's grpc port"
        );

        let budget = find(&rendered, "PodDisruptionBudget", name);
        assert!(selects(&budget["spec"]["selector"], &pods), "PodDisruptionBudget {name} selects its pods");
        let replicas = number(&deployment["spec"]["replicas"], "replicas");
        let keeps_one = match (budget["spec"].get("maxUnavailable"), budget["spec"].get("minAvailable")) {
            (Some(max), None) => number(max, "maxUnavailable") < replicas,
            (None, Some(min)) => number(min, "minAvailable") >= 1 && number(min, "minAvailable") < replicas,
            _ => false,
        };
        assert!(keeps_one, "PodDisruptionBudget {name} keeps a pod up and still lets a node drain");

        let autoscaler = find(&rendered, "HorizontalPodAutoscaler", name);
        let target = &autoscaler["spec"]["scaleTargetRef"];
        assert_eq!((target["kind"].as_str(), target["name"].as_str()), (Some("Deployment"), Some(name)));
        let min = number(&autoscaler["spec"]["minReplicas"], "minReplicas");
        assert!(min >= 2 && number(&autoscaler["spec"]["maxReplicas"], "maxReplicas") >= min);
    }
    assert_eq!(rendered.namespace.as_deref(), Some("steplab"));
    assert!(all(&rendered, "Namespace").any(|n| n["metadata"]["name"] == "steplab"), "the overlay creates it");
}

#[test]
fn network_policies_let_only_participant_pods_reach_content_release_and_payments() {
    let rendered = production();
    let (_, image) = dockerfile();
    let deployments: Vec<(ServiceName, BTreeMap<String, String>)> =
        ServiceName::ALL.into_iter().map(|s| (s, pod_labels(find(&rendered, "Deployment", s.as_str())))).collect();
    let participant = &deployments[0].1;
    assert_eq!(deployments[0].0, ServiceName::Participant);
    let policies: Vec<&Value> = all(&rendered, "NetworkPolicy").collect();

    // Default deny: a policy isolating every Steplab pod for ingress.
    assert!(
        policies.iter().any(|p| deployments.iter().all(|(_, labels)| selects(&p["spec"]["podSelector"], labels))
            && strings(&p["spec"]["policyTypes"], "policyTypes").contains(&"Ingress".to_owned())
            && p["spec"]["ingress"].as_array().is_none_or(Vec::is_empty)),
        "a default-deny ingress policy selects every Steplab pod"
    );
    for (_, labels) in &deployments {
        assert!(!labels.contains_key("steplab.io/client"), "Steplab's own pods are not clients");
    }

    for (service, labels) in &deployments {
        let deployment = find(&rendered, "Deployment", service.as_str());
        let (env, _) = container_env(&rendered, &image, container(deployment), service.as_str());
        let config = config_from(&env).expect("valid");
        let port = config.service(*service).listen.port();
        let metrics_port = config.metrics.listen.map(|a| a.port());
        let mut from_participant = false;
        let mut from_clients = false;
        let mut scraped = false;
        for policy in policies.iter().filter(|p| selects(&p["spec"]["podSelector"], labels)) {
            let policy_name = text(&policy["metadata"]["name"], "name");
            for rule in policy["spec"]["ingress"].as_array().into_iter().flatten() {
                let peers = rule["from"]
                    .as_array()
                    .unwrap_or_else(|| panic!("{policy_name}: a rule without `from` admits anyone"));
                assert!(!peers.is_empty(), "{policy_name}: an empty `from` admits anyone");
                let ports = rule["ports"].as_array().unwrap_or_else(|| panic!("{policy_name}: name the port"));
                // The metrics port is open to labelled Prometheus pods only.
                if let Some(metrics) = metrics_port
                    && !ports.is_empty()
                    && ports.iter().all(|p| p["port"] == metrics)
                {
                    for peer in peers {
                        assert_eq!(
                            peer["podSelector"]["matchLabels"]["steplab.io/monitoring"], "true",
                            "{policy_name}: only monitoring pods scrape metrics"
                        );
                    }
                    scraped = true;
                    continue;
                }
                assert!(ports.iter().all(|p| p["port"] == port), "{policy_name}: only port {port}");
                for peer in peers {
                    assert!(peer.get("ipBlock").is_none(), "{policy_name}: no ipBlock peers");
                    let selector = &peer["podSelector"];
                    assert!(selector.is_object(), "{policy_name}: every peer names pods");
                    if selector["matchLabels"]["steplab.io/client"] == "true" {
                        from_clients = true;
                        continue;
                    }
                    assert!(
                        peer.get("namespaceSelector").is_none(),
                        "{policy_name}: Steplab peers in its own namespace"
                    );
                    let reached_by: Vec<ServiceName> =
                        deployments.iter().filter(|(_, l)| selects(selector, l)).map(|(s, _)| *s).collect();
                    // The DfE gateway's relay reaches payments, and nothing else.
                    if *service == ServiceName::Payments && reached_by == [ServiceName::DfeGateway] {
                        continue;
                    }
                    assert_eq!(reached_by, [ServiceName::Participant], "{policy_name}: only participant pods");
                    assert!(selects(selector, participant));
                    from_participant = true;
                }
            }
        }
        match service {
            ServiceName::Participant => {
                assert!(from_clients && !from_participant, "participant: reached by labelled clients")
            }
            _ => assert!(from_participant, "{}: the participant relay reaches it", service.as_str()),
        }
        assert!(metrics_port.is_none() || scraped, "{}: Prometheus can reach the metrics port", service.as_str());
    }
}

#[test]
fn every_overlay_secret_file_is_documented_and_ignored_by_git() {
    let overlay = root().join("docker/k8s/overlays/production");
    let rendered = production();
    let readme = read(&overlay.join("secrets/README.md"));
    for file in &rendered.secret_files {
        let name = file.strip_prefix("secrets/").unwrap_or_else(|| panic!("{file}: kept under secrets/"));
        assert!(readme.contains(&format!("`{name}`")), "secrets/README.md explains {name}");
    }
    let ignore = read(&overlay.join("secrets/.gitignore"));
    assert!(ignore.lines().any(|l| l.trim() == "*"), "git ignores the Secrets' contents");
}

#[test]
fn the_docs_document_production_and_every_variable() {
    let production = read(&root().join("docs/production.md"));
    for topic in ["docker/compose.yaml", "overlays/production", "steplab.io/client", "pg_advisory_lock", "Bearer"] {
        assert!(production.contains(topic), "docs/production.md explains {topic}");
    }
    let configuration = read(&root().join("docs/configuration.md"));
    for variable in config_variables() {
        assert!(configuration.contains(&format!("`{variable}`")), "docs/configuration.md's table lists `{variable}`");
    }
}

fn services_migrations() -> [(&'static str, &'static steplab_platform::db::Migrations); 4] {
    [
        ("participant", &steplab_participant::MIGRATIONS),
        ("content-release", &steplab_content_release::MIGRATIONS),
        ("payments", &steplab_payments::MIGRATIONS),
        ("dfe-gateway", &steplab_dfe_gateway::MIGRATIONS),
    ]
}

/// diesel keys a migration by the version before the first `_` of its folder
/// name: two migrations with one version means a fresh database gets only one
/// of them (two branches once both took `2026-11-29-000001`, and the
/// participant database lost its heartbeat table). Each service's combined
/// source (its own folders and the platform's steps) must refuse no version
/// twice, and the SQLite and PostgreSQL sources must hold the same migrations.
#[test]
fn every_migration_has_its_own_version_and_both_backends_the_same_ones() {
    use diesel::migration::MigrationSource;
    fn names<DB: diesel::backend::Backend>(source: impl MigrationSource<DB>, what: &str) -> Vec<String> {
        let migrations = source.migrations().unwrap_or_else(|e| panic!("{what}: {e}"));
        let mut names: Vec<String> = migrations.iter().map(|m| m.name().to_string()).collect();
        names.sort();
        names
    }
    for (service, migrations) in services_migrations() {
        let sqlite = names::<diesel::sqlite::Sqlite>(migrations.sqlite(), &format!("{service} (sqlite)"));
        let postgres = names::<diesel::pg::Pg>(migrations.postgres(), &format!("{service} (postgres)"));
        assert!(!sqlite.is_empty(), "{service}: no migrations");
        assert_eq!(sqlite, postgres, "{service}: SQLite and PostgreSQL migrations differ");
    }
}

/// A fresh SQLite database migrated by `migrations` (through the services'
/// own start-up path), and a connection to it.
async fn fresh_sqlite(
    migrations: &'static steplab_platform::db::Migrations,
) -> (tempfile::TempDir, diesel::SqliteConnection) {
    use diesel::Connection;
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("fresh.sqlite3");
    let url = steplab_platform::config::DatabaseUrl::Sqlite(path.clone());
    drop(steplab_platform::db::Database::open(&url, migrations).await.expect("migrated"));
    let mut conn = diesel::SqliteConnection::establish(&path.to_string_lossy()).expect("reopened");
    // The dropped pool's connections close on threads of their own, and the
    // last to close checkpoints the WAL under an exclusive lock; without a
    // busy timeout, as every service connection has, a write here that
    // meets it fails with "database is locked" (8 of 150 runs with both
    // cores loaded).
    diesel::connection::SimpleConnection::batch_execute(&mut conn, "PRAGMA busy_timeout = 5000").expect("busy timeout");
    (dir, conn)
}

fn sqlite_lines(conn: &mut diesel::SqliteConnection, query: &str) -> Vec<String> {
    use diesel::{QueryableByName, RunQueryDsl, sql_types::Text};
    #[derive(QueryableByName)]
    struct Line {
        #[diesel(sql_type = Text)]
        line: String,
    }
    diesel::sql_query(query).load::<Line>(conn).expect(query).into_iter().map(|l| l.line).collect()
}

/// The schema a fresh SQLite database of `migrations` ends in: every
/// `sqlite_master` entry with its SQL as stored, and the versions diesel
/// recorded, which a deployed database already holds.
async fn fresh_sqlite_schema(migrations: &'static steplab_platform::db::Migrations) -> String {
    let (_dir, mut conn) = fresh_sqlite(migrations).await;
    let versions = sqlite_lines(
        &mut conn,
        "SELECT 'version ' || version AS line FROM __diesel_schema_migrations ORDER BY version",
    );
    let objects = sqlite_lines(
        &mut conn,
        "SELECT type || ' ' || name || ' on ' || tbl_name || char(10) || coalesce(sql, '') AS line \
         FROM sqlite_master ORDER BY type, name",
    );
    format!("{}\n\n{}\n", versions.join("\n"), objects.join("\n\n"))
}

/// A fresh database ends in the very schema, and records the very versions,
/// that each service's migrations produced before the platform's tables moved
/// into the platform (tests/fixtures/schema holds what they produced then;
/// `STEPLAB_BLESS_SCHEMA=1` rewrites it after a deliberate schema change).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_sqlite_database_gets_the_schema_each_service_always_had() {
    for (service, migrations) in services_migrations() {
        let schema = fresh_sqlite_schema(migrations).await;
        let expected_file = root().join("tests/fixtures/schema").join(format!("{service}.sqlite.txt"));
        if std::env::var_os("STEPLAB_BLESS_SCHEMA").is_some() {
            std::fs::write(&expected_file, &schema).expect("expected schema written");
        }
        assert_eq!(schema, read(&expected_file), "{service}: the fresh SQLite schema changed");
    }
}

/// Every migration can be reverted, the newest first, down to an empty
/// database: no folder lost its down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sqlite_migration_reverts_to_an_empty_database() {
    use diesel::migration::MigrationSource;
    for (service, migrations) in services_migrations() {
        let (_dir, mut conn) = fresh_sqlite(migrations).await;
        let mut all = MigrationSource::<diesel::sqlite::Sqlite>::migrations(&migrations.sqlite()).expect("migrations");
        all.sort_by(|a, b| b.name().version().cmp(&a.name().version()));
        for migration in &all {
            migration
                .revert(&mut conn)
                .unwrap_or_else(|e| panic!("{service}: cannot revert {}: {e}", migration.name()));
        }
        let left = sqlite_lines(
            &mut conn,
            "SELECT name AS line FROM sqlite_master \
             WHERE tbl_name NOT IN ('__diesel_schema_migrations', 'sqlite_sequence') ORDER BY name",
        );
        assert!(left.is_empty(), "{service}: reverting every migration left {left:?}");
    }
}

/// Each service's migration folder is written once for both backends, as an
/// `up.sql` and a `down.sql`, and the service runs it: a folder left out of
/// its `MIGRATIONS` would never reach a database.
#[test]
fn every_migration_folder_is_one_up_and_one_down_that_its_service_runs() {
    use diesel::migration::MigrationSource;
    for (service, migrations) in services_migrations() {
        let source = MigrationSource::<diesel::sqlite::Sqlite>::migrations(&migrations.sqlite()).expect("migrations");
        let run: BTreeSet<String> = source.iter().map(|m| m.name().to_string()).collect();
        let dir = root().join("services").join(service).join("migrations");
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display())) {
            let folder = entry.expect("directory entry").path();
            let name = folder.file_name().unwrap_or_default().to_string_lossy().into_owned();
            let files: BTreeSet<String> = std::fs::read_dir(&folder)
                .unwrap_or_else(|e| panic!("{service}: {name} is not a migration folder: {e}"))
                .map(|file| file.expect("directory entry").file_name().to_string_lossy().into_owned())
                .collect();
            assert_eq!(files, BTreeSet::from(["down.sql".to_owned(), "up.sql".to_owned()]), "{service}: {name}");
            assert!(run.contains(&name), "{service}: {name} is not in its MIGRATIONS");
        }
    }
}

/// A fresh PostgreSQL database, dropped (with any connection left to it) when
/// the test ends, however it ends.
struct FreshPostgres {
    admin: diesel::PgConnection,
    name: String,
    url: String,
}

impl FreshPostgres {
    /// `None` (after a loud skip) when no PostgreSQL is reachable, unless
    /// `STEPLAB_REQUIRE_POSTGRES=1`.
    fn create() -> Option<Self> {
        use diesel::{Connection, RunQueryDsl};
        let admin_url = steplab_tests::postgres_admin_url();
        let mut admin = match diesel::PgConnection::establish(&admin_url) {
            Ok(admin) => admin,
            Err(e) if std::env::var("STEPLAB_REQUIRE_POSTGRES").is_ok_and(|v| v == "1") => {
                panic!("STEPLAB_REQUIRE_POSTGRES=1 but PostgreSQL at {admin_url} is not usable: {e}")
            }
            Err(e) => {
                eprintln!("\n*** SKIPPED: PostgreSQL at {admin_url} is not usable ({e}) ***\n");
                return None;
            }
        };
        let name = format!("steplab_schema_{}", uuid::Uuid::now_v7().simple());
        diesel::sql_query(format!("CREATE DATABASE \"{name}\"")).execute(&mut admin).expect("database created");
        let base = admin_url.rsplit_once('/').map_or(admin_url.as_str(), |(base, _)| base);
        let url = format!("{base}/{name}");
        Some(Self { admin, name, url })
    }
}

impl Drop for FreshPostgres {
    fn drop(&mut self) {
        use diesel::RunQueryDsl;
        let drop = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
        let _ = diesel::sql_query(drop).execute(&mut self.admin);
    }
}

fn postgres_lines(conn: &mut diesel::PgConnection, query: &str) -> Vec<String> {
    use diesel::{QueryableByName, RunQueryDsl, sql_types::Text};
    #[derive(QueryableByName)]
    struct Line {
        #[diesel(sql_type = Text)]
        line: String,
    }
    diesel::sql_query(query).load::<Line>(conn).expect(query).into_iter().map(|l| l.line).collect()
}

/// The schema a fresh PostgreSQL database of `migrations` ends in, as the
/// catalog describes it (columns, keys and checks, indexes, sequences of the
/// public schema), and the versions diesel recorded. Not-null constraints
/// are read from the columns: PostgreSQL 18 also lists them as constraints.
async fn fresh_postgres_schema(
    database: &FreshPostgres,
    migrations: &'static steplab_platform::db::Migrations,
) -> String {
    use diesel::Connection;
    let url = steplab_platform::config::DatabaseUrl::Postgres(database.url.clone());
    drop(steplab_platform::db::Database::open(&url, migrations).await.expect("migrated"));
    let mut conn = diesel::PgConnection::establish(&database.url).expect("reconnected");
    let sections = [
        "SELECT 'version ' || version AS line FROM __diesel_schema_migrations ORDER BY version",
        "SELECT 'column ' || table_name || '.' || column_name || ' ' || data_type \
         || CASE WHEN is_nullable = 'NO' THEN ' NOT NULL' ELSE '' END \
         || coalesce(' DEFAULT ' || column_default, '') \
         || CASE WHEN is_identity = 'YES' THEN ' IDENTITY ' || identity_generation ELSE '' END AS line \
         FROM information_schema.columns WHERE table_schema = 'public' ORDER BY table_name, ordinal_position",
        "SELECT 'constraint ' || conrelid::regclass::text || ' ' || conname || ' ' || pg_get_constraintdef(oid) AS line \
         FROM pg_constraint WHERE connamespace = 'public'::regnamespace AND contype IN ('p', 'u', 'f', 'c') \
         ORDER BY conrelid::regclass::text, conname",
        "SELECT 'index ' || indexname || ' ' || indexdef AS line FROM pg_indexes WHERE schemaname = 'public' \
         ORDER BY indexname",
        "SELECT 'sequence ' || sequence_name || ' ' || data_type AS line FROM information_schema.sequences \
         WHERE sequence_schema = 'public' ORDER BY sequence_name",
    ];
    let sections: Vec<String> = sections.iter().map(|query| postgres_lines(&mut conn, query).join("\n")).collect();
    format!("{}\n", sections.join("\n\n"))
}

/// The PostgreSQL counterpart of the SQLite schema test: a fresh database
/// ends in the schema, and records the versions, that each service's
/// migrations produced when each backend had its own copy of the SQL
/// (tests/fixtures/schema/*.postgres.txt was written by those copies).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_postgres_database_gets_the_schema_each_service_always_had() {
    for (service, migrations) in services_migrations() {
        let Some(database) = FreshPostgres::create() else { return };
        let schema = fresh_postgres_schema(&database, migrations).await;
        let expected_file = root().join("tests/fixtures/schema").join(format!("{service}.postgres.txt"));
        if std::env::var_os("STEPLAB_BLESS_SCHEMA").is_some() {
            std::fs::write(&expected_file, &schema).expect("expected schema written");
        }
        assert_eq!(schema, read(&expected_file), "{service}: the fresh PostgreSQL schema changed");
    }
}
