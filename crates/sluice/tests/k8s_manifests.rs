//! The Kubernetes manifests under `deploy/k8s/` parse as YAML and agree with the binary:
//! every sluice container runs the image the Dockerfile builds, exposes the ports its
//! ConfigMap's config listens on (and those are the binary's defaults), probes the API
//! port, drains with SIGQUIT within its grace period, and each ConfigMap's config is one
//! `sluice -t` accepts.
//!
//! `kubectl apply --dry-run=client` needs an API server even in client mode, so this
//! check is the CI test; docs/cluster.md shows `kubectl kustomize` / a server dry run.

use std::path::{Path, PathBuf};
use std::process::Command;

use yaml_rust2::{Yaml, YamlLoader};

fn k8s_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/k8s")
}

fn load(name: &str) -> Vec<Yaml> {
    let path = k8s_dir().join(name);
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("{name}: not YAML: {e}"))
}

fn kind<'a>(docs: &'a [Yaml], kind: &str) -> Vec<&'a Yaml> {
    docs.iter()
        .filter(|d| d["kind"].as_str() == Some(kind))
        .collect()
}

/// The value of `directive` (a top-level or `http_api`/`http_server` `listen`) as a port.
fn listen_port(conf: &str, block: Option<&str>) -> u16 {
    let mut in_block = block.is_none();
    let mut depth = 0;
    for line in conf.lines() {
        let t = line.trim();
        if let Some(b) = block {
            if t.starts_with(b) && t.ends_with('{') {
                in_block = true;
                depth = 0;
            }
        }
        if t.ends_with('{') {
            depth += 1;
        }
        if t.starts_with('}') {
            depth -= 1;
        }
        let at_level = if block.is_some() {
            depth == 1
        } else {
            depth == 0
        };
        if in_block && at_level {
            if let Some(v) = t.strip_prefix("listen") {
                let v = v.trim().trim_end_matches(';');
                return v.rsplit(':').next().unwrap().parse().expect("listen port");
            }
        }
    }
    panic!("no listen for {block:?} in\n{conf}")
}

fn container_ports(c: &Yaml) -> Vec<(String, i64)> {
    c["ports"]
        .as_vec()
        .expect("container ports")
        .iter()
        .map(|p| {
            (
                p["name"].as_str().expect("port name").to_string(),
                p["containerPort"].as_i64().expect("containerPort"),
            )
        })
        .collect()
}

/// `sluice -t -c FILE` accepts the config (warnings allowed, errors not).
fn config_is_valid(name: &str, conf: &str) {
    let dir = std::env::temp_dir().join(format!("sluice-k8s-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join(name);
    std::fs::write(&file, conf).expect("write conf");
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("-t")
        .arg("-c")
        .arg(&file)
        .current_dir(&dir)
        .output()
        .expect("run sluice -t");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "{name} refused by sluice -t:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Checks one sluice workload (StatefulSet or Deployment) against its ConfigMap.
fn check_workload(file: &str, workload_kind: &str, conf_key: &str) {
    let docs = load(file);
    let cm = kind(&docs, "ConfigMap");
    assert_eq!(cm.len(), 1, "{file}: one ConfigMap");
    let conf = cm[0]["data"][conf_key]
        .as_str()
        .unwrap_or_else(|| panic!("{file}: ConfigMap has no {conf_key}"));
    config_is_valid(conf_key, conf);
    let rtmp = listen_port(conf, None);
    let api = listen_port(conf, Some("http_api"));
    let http = listen_port(conf, Some("http_server"));
    // The binary's defaults (SRS's): what the Dockerfile EXPOSEs too.
    assert_eq!((rtmp, api, http), (1935, 1985, 8080), "{file}: ports");
    let dockerfile =
        std::fs::read_to_string(k8s_dir().join("../../Dockerfile")).expect("Dockerfile");
    assert!(
        dockerfile.contains("EXPOSE 1935 1985 8080"),
        "Dockerfile ports changed"
    );
    assert!(dockerfile.contains("STOPSIGNAL SIGQUIT"));

    let w = kind(&docs, workload_kind);
    assert_eq!(w.len(), 1, "{file}: one {workload_kind}");
    let spec = &w[0]["spec"]["template"]["spec"];
    let grace = spec["terminationGracePeriodSeconds"]
        .as_i64()
        .expect("terminationGracePeriodSeconds");
    // sluice's SIGQUIT drain is bounded by GRACEFUL_TIMEOUT (20 s).
    assert!(
        grace > 20,
        "{file}: grace period {grace} s shorter than the drain"
    );
    let c = &spec["containers"][0];
    assert_eq!(c["image"].as_str(), Some("sluice:latest"), "{file}: image");
    let args: Vec<&str> = c["args"]
        .as_vec()
        .expect("args")
        .iter()
        .filter_map(Yaml::as_str)
        .collect();
    let mount = c["volumeMounts"][0]["mountPath"].as_str().expect("mount");
    assert_eq!(args, ["-c", &format!("{mount}/{conf_key}")], "{file}: args");
    assert_eq!(
        spec["volumes"][0]["configMap"]["name"].as_str(),
        cm[0]["metadata"]["name"].as_str(),
        "{file}: the mounted ConfigMap"
    );
    let ports = container_ports(c);
    for (name, port) in [("rtmp", rtmp), ("api", api), ("http", http)] {
        assert!(
            ports.contains(&(name.to_string(), i64::from(port))),
            "{file}: container port {name}={port} missing: {ports:?}"
        );
    }
    for probe in ["readinessProbe", "livenessProbe"] {
        let p = &c[probe]["httpGet"];
        assert_eq!(p["port"].as_str(), Some("api"), "{file}: {probe} port");
        assert_eq!(
            p["path"].as_str(),
            Some("/api/v1/summaries"),
            "{file}: {probe} path"
        );
    }
    let pre_stop = c["lifecycle"]["preStop"]["exec"]["command"]
        .as_vec()
        .expect("preStop command");
    assert!(
        pre_stop
            .iter()
            .filter_map(Yaml::as_str)
            .any(|s| s.contains("kill -QUIT 1")),
        "{file}: preStop does not send SIGQUIT"
    );
    // Every Service targets ports the container names.
    for svc in kind(&docs, "Service") {
        for p in svc["spec"]["ports"].as_vec().expect("service ports") {
            let target = p["targetPort"].as_str().expect("named targetPort");
            assert!(
                ports.iter().any(|(n, _)| n == target),
                "{file}: Service port {target} names no container port"
            );
        }
    }
}

#[test]
fn origin_statefulset_matches_the_binary() {
    check_workload("origin.yaml", "StatefulSet", "origin.conf");
    let docs = load("origin.yaml");
    let sts = kind(&docs, "StatefulSet")[0];
    let svc = kind(&docs, "Service")
        .into_iter()
        .find(|s| s["spec"]["clusterIP"].as_str() == Some("None"))
        .expect("a headless Service for the origins' names");
    assert_eq!(sts["spec"]["serviceName"], svc["metadata"]["name"]);
    let env = sts["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_vec()
        .expect("env");
    assert!(
        env.iter()
            .any(|e| e["name"].as_str() == Some("SLUICE_DEFAULT_VHOST__CLUSTER__ADVERTISE")),
        "origins must advertise their pod name"
    );
}

#[test]
fn edge_deployment_matches_the_binary() {
    check_workload("edge.yaml", "Deployment", "edge.conf");
}

#[test]
fn redis_and_kustomization_are_whole() {
    let docs = load("redis.yaml");
    let svc = kind(&docs, "Service")[0];
    assert_eq!(svc["metadata"]["name"].as_str(), Some("sluice-redis"));
    assert_eq!(svc["spec"]["ports"][0]["port"].as_i64(), Some(6379));
    // The origins' and edges' directory URLs name this Service.
    for (file, key) in [("origin.yaml", "origin.conf"), ("edge.yaml", "edge.conf")] {
        let d = load(file);
        let conf = kind(&d, "ConfigMap")[0]["data"][key]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            conf.contains("redis://sluice-redis:6379/"),
            "{file}: directory is not the sluice-redis Service"
        );
    }
    let k = load("kustomization.yaml");
    let listed: Vec<&str> = k[0]["resources"]
        .as_vec()
        .expect("resources")
        .iter()
        .filter_map(Yaml::as_str)
        .collect();
    for f in ["redis.yaml", "origin.yaml", "edge.yaml"] {
        assert!(listed.contains(&f), "kustomization misses {f}");
    }
}
