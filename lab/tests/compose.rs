//! `grafana/docker-compose.yml` without Docker: it parses, every file or folder it mounts exists in the repository,
//! and the paths it mounts to are the ones the other shipped files expect (Prometheus's config flag, Grafana's
//! provisioning folder, the dashboard folder of the provisioning file, the home dashboard), with the host network
//! the shipped loopback addresses need.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_yaml::Value;

fn grafana_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../grafana")
}

fn yaml(path: &Path) -> Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// A service's bind mounts, container path to host path, and the named volumes it uses.
fn mounts(service: &Value) -> (BTreeMap<String, PathBuf>, Vec<String>) {
    let mut binds = BTreeMap::new();
    let mut named = Vec::new();
    let none = Vec::new();
    for volume in service["volumes"].as_sequence().unwrap_or(&none) {
        let spec = volume.as_str().unwrap();
        let mut parts = spec.split(':');
        let (source, target) = (parts.next().unwrap(), parts.next().unwrap());
        assert!(
            parts.all(|option| option == "ro" || option == "rw"),
            "{spec}"
        );
        if source.starts_with('.') || source.starts_with('/') {
            binds.insert(target.to_owned(), grafana_dir().join(source));
        } else {
            named.push(source.to_owned());
        }
    }
    (binds, named)
}

#[test]
fn the_compose_file_mounts_what_the_repository_ships_where_the_other_files_expect_it() {
    let compose = yaml(&grafana_dir().join("docker-compose.yml"));
    let services = compose["services"].as_mapping().unwrap();
    let declared: Vec<&str> = compose["volumes"]
        .as_mapping()
        .map(|m| m.keys().map(|k| k.as_str().unwrap()).collect())
        .unwrap_or_default();
    for (name, service) in services {
        let name = name.as_str().unwrap();
        let image = service["image"].as_str().unwrap();
        let tag = image.rsplit_once(':').map(|(_, tag)| tag);
        assert!(
            tag.is_some_and(|t| t != "latest"),
            "{name}: pin the image version ({image})"
        );
        // The shipped files name the lab and Prometheus by 127.0.0.1, which is the host only on its network.
        assert_eq!(service["network_mode"], "host", "{name}");
        let (binds, named) = mounts(service);
        for (target, source) in &binds {
            assert!(
                source.exists(),
                "{name} mounts {} at {target}, which is not in the repository",
                source.display()
            );
        }
        for volume in &named {
            assert!(
                declared.contains(&volume.as_str()),
                "{name}: volume {volume} is not declared"
            );
        }
    }

    // Prometheus reads the shipped scrape config.
    let prometheus = &compose["services"]["prometheus"];
    let (binds, _) = mounts(prometheus);
    let flag = prometheus["command"]
        .as_sequence()
        .unwrap()
        .iter()
        .find_map(|arg| arg.as_str().unwrap().strip_prefix("--config.file="))
        .unwrap();
    assert_eq!(
        binds[flag].canonicalize().unwrap(),
        grafana_dir().join("prometheus.yml").canonicalize().unwrap()
    );

    // Grafana gets the provisioning folder where it looks for it, and the dashboards where the provisioning file
    // says they are.
    let grafana = &compose["services"]["grafana"];
    let (binds, _) = mounts(grafana);
    assert_eq!(
        binds["/etc/grafana/provisioning"].canonicalize().unwrap(),
        grafana_dir().join("provisioning").canonicalize().unwrap()
    );
    let provider = yaml(&grafana_dir().join("provisioning/dashboards/scalelab.yaml"));
    let folder = provider["providers"][0]["options"]["path"]
        .as_str()
        .unwrap();
    let dashboards = binds.get(folder).unwrap_or_else(|| {
        panic!("nothing is mounted at {folder}, where the dashboards are provisioned from")
    });
    assert!(dashboards.join("scalelab.json").is_file());
    let home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
        .as_str()
        .unwrap();
    let file = Path::new(home).strip_prefix(folder).unwrap();
    assert!(dashboards.join(file).is_file(), "{home}");

    // The data source is the Prometheus started next to it.
    let datasources = yaml(&grafana_dir().join("provisioning/datasources/prometheus.yaml"));
    let url = datasources["datasources"][0]["url"].as_str().unwrap();
    let listen = prometheus["command"]
        .as_sequence()
        .unwrap()
        .iter()
        .find_map(|arg| arg.as_str().unwrap().strip_prefix("--web.listen-address="))
        .unwrap();
    assert_eq!(url, format!("http://{listen}"));

    // Jaeger takes OTLP/HTTP where the README's `otlp_endpoint` points, and Grafana's Jaeger
    // data source asks its query port.
    let jaeger = &compose["services"]["jaeger"];
    assert_eq!(
        jaeger["environment"]["COLLECTOR_OTLP_HTTP_HOST_PORT"],
        "127.0.0.1:4318"
    );
    let readme = std::fs::read_to_string(grafana_dir().join("../README.md")).unwrap();
    assert!(readme.contains("otlp_endpoint = \"http://127.0.0.1:4318\""));
    let query = jaeger["environment"]["QUERY_HTTP_SERVER_HOST_PORT"]
        .as_str()
        .unwrap();
    let sources = yaml(&grafana_dir().join("provisioning/datasources/jaeger.yaml"));
    assert_eq!(sources["datasources"][0]["type"], "jaeger");
    assert_eq!(
        sources["datasources"][0]["url"].as_str().unwrap(),
        format!("http://{query}")
    );

    // Exemplars (issue 29): Prometheus keeps them, and their trace_id opens the trace in the
    // Jaeger data source.
    let flags: Vec<&str> = prometheus["command"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|arg| arg.as_str())
        .collect();
    assert!(
        flags.contains(&"--enable-feature=exemplar-storage"),
        "{flags:?}"
    );
    let link = &datasources["datasources"][0]["jsonData"]["exemplarTraceIdDestinations"][0];
    assert_eq!(link["name"], "trace_id");
    assert_eq!(link["datasourceUid"], sources["datasources"][0]["uid"]);
}
