//! Switching a cluster from upstream HNC v1.1 to this controller in place, and back (docs/migration.md).
//!
//! The API server is loaded with the state upstream HNC leaves once it has converged, written as upstream's
//! code writes it: a root with 200 descendants, one of them a subnamespace made through an anchor;
//! HierarchyConfigurations with their parents, children and finalizers; tree labels; copies of a Role and a
//! RoleBinding in every descendant; the `config` HNCConfiguration with its status; upstream's webhook
//! configurations and its certificate Secret (RSA keys in PKCS #1, issued by `openssl` as Go's rotator would).
//! Then the procedure runs: a `--webhooks-only` replica joins the webhook endpoints (upstream's pods would
//! still be there), two full replicas start and take over, the webhooks-only replica leaves. A probe keeps
//! sending requests that must be denied through all of it.
//!
//! Checked: not one write to namespaces, HierarchyConfigurations, anchors or copies; every other write listed
//! and justified; every probe denied by a webhook; later changes propagated by this controller; and, after
//! it stopped, every object exactly as upstream would have left it, so upstream can be started again.
//!
//! Two stand-ins for what apisim cannot do: the webhook configurations name a URL (the forwarder below stands
//! for the Service `hnc-webhook-service`) instead of the Service, and the serving certificate names
//! `localhost`, the URL's host, instead of `hnc-webhook-service.hnc-system.svc`. Everything else is upstream's.
//!
//! Against a real cluster (`HNC_E2E_KUBECONFIG`) the test is skipped: it starts replicas and reads apisim's
//! record of who wrote what.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use base64::Engine;
use hnc_e2e::forwarder::Forwarder;
use hnc_e2e::{HNC_NAMESPACE, TestEnv, eventually, tools};
use kube::api::{ApiResource, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};

const BINARY: &str = env!("CARGO_BIN_EXE_hnc-e2e-controller");
const CONVERGE: Duration = Duration::from_secs(60);
/// Children of the root (the last one a subnamespace), and children of each child: 10 + 10 × 19 = 200.
const CHILDREN: usize = 10;
const GRANDCHILDREN: usize = 19;
/// How long the replicas are watched for writes once they are idle.
const SETTLE: Duration = Duration::from_secs(3);
const OPENSSL_INSTALL: &str = "install OpenSSL's command-line tool (`apt-get install openssl`)";

/// Flags of the full replicas: upstream's default exclusions, webhooks by URL through the forwarder, this
/// controller managing the certificate (it adopts upstream's), short Leases so the shards settle quickly.
fn full_args(base: &str) -> Vec<String> {
    [
        base,
        "--webhook-server-port=0",
        "--enable-internal-cert-management",
        "--apiserver-qps-throttle=500",
        "--shards=8",
        "--lease-duration=3s",
        "--renew-deadline=2s",
        "--retry-period=500ms",
        "--excluded-namespace=kube-system",
        "--excluded-namespace=kube-public",
        "--excluded-namespace=kube-node-lease",
    ]
    .map(str::to_owned)
    .to_vec()
}

// ---- The state upstream HNC v1.1 leaves (internal/hierarchyconfig, internal/anchor, internal/objects,
// ---- internal/hncconfig reconcilers; cert-controller's rotator; config/webhook). ----

/// The tree: every namespace with its parent, and which ones are subnamespaces (and of which parent).
#[derive(Clone)]
struct Tree {
    parent: BTreeMap<String, Option<String>>,
    subnamespaces: BTreeMap<String, String>,
}

impl Tree {
    fn new(env: &TestEnv) -> Tree {
        let root = env.ns("root");
        let mut tree = Tree { parent: BTreeMap::new(), subnamespaces: BTreeMap::new() };
        tree.parent.insert(root.clone(), None);
        for c in 0..CHILDREN {
            let child = env.ns(&format!("c{c}"));
            tree.parent.insert(child.clone(), Some(root.clone()));
            if c == CHILDREN - 1 {
                tree.subnamespaces.insert(child.clone(), root.clone());
            }
            for g in 0..GRANDCHILDREN {
                tree.parent.insert(env.ns(&format!("g{c}-{g}")), Some(child.clone()));
            }
        }
        tree
    }

    fn ancestry(&self, ns: &str) -> Vec<String> {
        let mut out = vec![ns.to_owned()];
        while let Some(Some(p)) = self.parent.get(out.last().expect("not empty")) {
            out.push(p.clone());
        }
        out
    }

    fn children(&self, ns: &str) -> Vec<String> {
        // Sorted, as forest.Namespace.ChildNames returns them.
        self.parent.iter().filter(|(_, p)| p.as_deref() == Some(ns)).map(|(c, _)| c.clone()).collect()
    }

    fn descendants(&self, ns: &str) -> Vec<String> {
        self.parent.keys().filter(|n| *n != ns && self.ancestry(n).iter().any(|a| a == ns)).cloned().collect()
    }
}

/// A namespace after upstream's HierarchyConfiguration reconciler: `included-namespace`, one tree label per
/// ancestor (syncLabels); a subnamespace keeps the annotation the anchor reconciler created it with.
fn namespace(tree: &Tree, ns: &str) -> Value {
    let mut labels = serde_json::Map::new();
    labels.insert("hnc.x-k8s.io/included-namespace".into(), json!("true"));
    for (depth, ancestor) in tree.ancestry(ns).iter().enumerate() {
        labels.insert(format!("{ancestor}.tree.hnc.x-k8s.io/depth"), json!(depth.to_string()));
    }
    let mut metadata = json!({"name": ns, "labels": labels});
    if let Some(parent) = tree.subnamespaces.get(ns) {
        metadata["annotations"] = json!({"hnc.x-k8s.io/subnamespace-of": parent});
    }
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": metadata})
}

/// A HierarchyConfiguration as upstream writes it (Go's `omitempty` on a struct omits nothing: `spec` and
/// `status` are always there); `None` where upstream creates none (a root without children or conditions).
fn hierarchy(tree: &Tree, ns: &str, anchors_in: &BTreeMap<String, Vec<String>>) -> Option<Value> {
    let parent = tree.parent.get(ns)?.clone();
    let children = tree.children(ns);
    if parent.is_none() && children.is_empty() {
        return None;
    }
    let mut hc = json!({
        "apiVersion": "hnc.x-k8s.io/v1alpha2", "kind": "HierarchyConfiguration",
        "metadata": {"name": "hierarchy", "namespace": ns},
        "spec": {}, "status": {},
    });
    if let Some(parent) = parent {
        hc["spec"]["parent"] = json!(parent);
    }
    if !children.is_empty() {
        hc["status"]["children"] = json!(children);
    }
    if anchors_in.get(ns).is_some_and(|a| !a.is_empty()) {
        hc["metadata"]["finalizers"] = json!(["hnc.x-k8s.io/hasSubnamespace"]);
    }
    Some(hc)
}

/// An anchor after upstream's anchor reconciler: its finalizer, state `Ok`.
fn anchor(parent: &str, child: &str) -> Value {
    json!({
        "apiVersion": "hnc.x-k8s.io/v1alpha2", "kind": "SubnamespaceAnchor",
        "metadata": {"name": child, "namespace": parent, "finalizers": ["hnc.x-k8s.io"]},
        "spec": {}, "status": {"status": "Ok"},
    })
}

/// A source object: a Role or RoleBinding with a label and an annotation of its own.
#[derive(Clone)]
struct Source {
    plural: &'static str,
    namespace: String,
    name: String,
    body: Value,
}

impl Source {
    fn role(namespace: &str, name: &str, verbs: &[&str]) -> Source {
        Source {
            plural: "roles",
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            body: json!({
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                "metadata": {"labels": {"team": "platform"}, "annotations": {"owner": "platform@example.com"}},
                "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": verbs}],
            }),
        }
    }

    fn binding(namespace: &str, name: &str, role: &str) -> Source {
        Source {
            plural: "rolebindings",
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            body: json!({
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                "metadata": {"labels": {"team": "platform"}},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role},
                "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "platform"}],
            }),
        }
    }

    fn object(&self) -> Value {
        let mut o = self.body.clone();
        o["metadata"]["name"] = json!(self.name);
        o["metadata"]["namespace"] = json!(self.namespace);
        o
    }

    /// The copy upstream's object reconciler writes in `ns` (writeObject): the source's canonical form — its
    /// content, its labels and annotations without HNC's — with `app.kubernetes.io/managed-by: hnc.x-k8s.io`
    /// (cleanSource) and `hnc.x-k8s.io/inherited-from`.
    fn copy_in(&self, ns: &str) -> Value {
        let mut o = self.object();
        o["metadata"]["namespace"] = json!(ns);
        o["metadata"]["labels"]["app.kubernetes.io/managed-by"] = json!("hnc.x-k8s.io");
        o["metadata"]["labels"]["hnc.x-k8s.io/inherited-from"] = json!(self.namespace);
        o
    }
}

/// Everything HNC keeps in the test's namespaces and the `config` singleton, as upstream leaves it, keyed by
/// (resource plural, namespace, name).
type State = BTreeMap<(String, String, String), Value>;

fn upstream_state(tree: &Tree, sources: &[Source]) -> State {
    let mut anchors_in: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (child, parent) in &tree.subnamespaces {
        anchors_in.entry(parent.clone()).or_default().push(child.clone());
    }
    let mut state = State::new();
    let mut put = |plural: &str, ns: &str, name: &str, object: Value| {
        state.insert((plural.to_owned(), ns.to_owned(), name.to_owned()), object);
    };
    for ns in tree.parent.keys() {
        put("namespaces", "", ns, namespace(tree, ns));
        if let Some(hc) = hierarchy(tree, ns, &anchors_in) {
            put("hierarchyconfigurations", ns, "hierarchy", hc);
        }
    }
    for (parent, children) in &anchors_in {
        for child in children {
            put("subnamespaceanchors", parent, child, anchor(parent, child));
        }
    }
    let mut counts: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for s in sources {
        put(s.plural, &s.namespace, &s.name, s.object());
        let entry = counts.entry(s.plural).or_default();
        entry.1 += 1;
        for d in tree.descendants(&s.namespace) {
            put(s.plural, &d, &s.name, s.copy_in(&d));
            entry.0 += 1;
        }
    }
    // The HNCConfiguration reconciler's status: the enforced types sorted by group then resource, the copies
    // this process wrote or found up to date, the sources in its forest; no condition on a healthy forest.
    let resources: Vec<Value> = ["rolebindings", "roles"]
        .iter()
        .map(|r| {
            let (propagated, sources) = counts.get(r).copied().unwrap_or_default();
            json!({"group": "rbac.authorization.k8s.io", "version": "v1", "resource": r, "mode": "Propagate",
                   "numPropagatedObjects": propagated, "numSourceObjects": sources})
        })
        .collect();
    put(
        "hncconfigurations",
        "",
        "config",
        json!({"apiVersion": "hnc.x-k8s.io/v1alpha2", "kind": "HNCConfiguration", "metadata": {"name": "config"},
               "spec": {}, "status": {"resources": resources}}),
    );
    state
}

/// Upstream's certificate Secret, made as cert-controller's rotator makes it: RSA 2048 keys in PKCS #1, a
/// ten-year CA `hnc-ca` (organization `hnc`, naming itself `hnc-ca`), a ten-year serving certificate naming
/// one DNS name (here `localhost`, see the module documentation). `None` when openssl is missing and the test
/// may skip.
fn upstream_certificate(dir: &std::path::Path) -> anyhow::Result<Option<BTreeMap<String, String>>> {
    if std::process::Command::new("openssl").arg("version").output().is_err() {
        tools::missing("openssl", OPENSSL_INSTALL);
        return Ok(None);
    }
    let run = |args: &[&str]| -> anyhow::Result<()> {
        let out = std::process::Command::new("openssl").args(args).current_dir(dir).output()?;
        ensure!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        Ok(())
    };
    run(&["genrsa", "-traditional", "-out", "ca.key", "2048"])?;
    run(&["genrsa", "-traditional", "-out", "tls.key", "2048"])?;
    run(&[
        "req",
        "-x509",
        "-new",
        "-key",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "3650",
        "-set_serial",
        "0",
        "-subj",
        "/O=hnc/CN=hnc-ca",
        "-addext",
        "subjectAltName=DNS:hnc-ca",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,digitalSignature,keyEncipherment,keyCertSign",
    ])?;
    run(&["req", "-new", "-key", "tls.key", "-out", "tls.csr", "-subj", "/CN=localhost"])?;
    std::fs::write(
        dir.join("tls.ext"),
        "subjectAltName=DNS:localhost\nkeyUsage=critical,digitalSignature,keyEncipherment\n\
         extendedKeyUsage=serverAuth\nbasicConstraints=critical,CA:FALSE\n",
    )?;
    run(&[
        "x509",
        "-req",
        "-in",
        "tls.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-set_serial",
        "1",
        "-days",
        "3650",
        "-out",
        "tls.crt",
        "-extfile",
        "tls.ext",
    ])?;
    let mut data = BTreeMap::new();
    for key in ["ca.crt", "ca.key", "tls.crt", "tls.key"] {
        data.insert(key.to_owned(), std::fs::read_to_string(dir.join(key))?);
    }
    Ok(Some(data))
}

/// Upstream's validating configuration after its installation (config/webhook/manifests.yaml with
/// webhook_patch.yaml) and its rotator's `caBundle`; entries in upstream's order, the objects entry with
/// upstream v1.1's static rule for every namespaced resource.
fn upstream_validating(url: &str, ca_bundle: &str) -> Value {
    let hook = |name: &str, path: &str, rules: Value| {
        json!({"name": name, "admissionReviewVersions": ["v1"], "failurePolicy": "Fail", "sideEffects": "None",
               "clientConfig": {"url": format!("{url}{path}"), "caBundle": ca_bundle}, "rules": rules})
    };
    let hnc = |ops: Value, resource: &str| json!([{"apiGroups": ["hnc.x-k8s.io"], "apiVersions": ["v1alpha2"], "operations": ops, "resources": [resource]}]);
    let mut objects = hook(
        "objects.hnc.x-k8s.io",
        "/validate-objects",
        json!([{"apiGroups": ["*"], "apiVersions": ["*"], "operations": ["CREATE", "UPDATE", "DELETE"],
                "resources": ["*"], "scope": "Namespaced"}]),
    );
    objects["timeoutSeconds"] = json!(2);
    objects["namespaceSelector"] = json!({"matchLabels": {"hnc.x-k8s.io/included-namespace": "true"}});
    json!({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": "hnc-validating-webhook-configuration"},
        "webhooks": [
            hook("subnamespaceanchors.hnc.x-k8s.io", "/validate-hnc-x-k8s-io-v1alpha2-subnamespaceanchors",
                 hnc(json!(["CREATE", "UPDATE", "DELETE"]), "subnamespaceanchors")),
            hook("hierarchyconfigurations.hnc.x-k8s.io", "/validate-hnc-x-k8s-io-v1alpha2-hierarchyconfigurations",
                 hnc(json!(["CREATE", "UPDATE"]), "hierarchyconfigurations")),
            objects,
            hook("hncconfigurations.hnc.x-k8s.io", "/validate-hnc-x-k8s-io-v1alpha2-hncconfigurations",
                 hnc(json!(["CREATE", "UPDATE", "DELETE"]), "hncconfigurations")),
            hook("namespaces.hnc.x-k8s.io", "/validate-v1-namespace",
                 json!([{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["DELETE", "CREATE", "UPDATE"],
                         "resources": ["namespaces"]}])),
        ],
    })
}

fn upstream_mutating(url: &str, ca_bundle: &str) -> Value {
    json!({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": "hnc-mutating-webhook-configuration"},
        "webhooks": [{"name": "namespacelabel.hnc.x-k8s.io", "admissionReviewVersions": ["v1"],
                      "failurePolicy": "Ignore", "sideEffects": "None",
                      "clientConfig": {"url": format!("{url}/mutate-namespace"), "caBundle": ca_bundle},
                      "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"],
                                 "resources": ["namespaces"]}]}],
    })
}

fn group_of(plural: &str) -> &'static str {
    match plural {
        "namespaces" | "secrets" => "",
        "roles" | "rolebindings" => "rbac.authorization.k8s.io",
        "validatingwebhookconfigurations" | "mutatingwebhookconfigurations" => "admissionregistration.k8s.io",
        _ => "hnc.x-k8s.io",
    }
}

fn load(env: &TestEnv, state: &State) -> anyhow::Result<()> {
    let sim = env.sim().context("apisim")?;
    // Namespaces first, then what lives in them.
    let (namespaces, rest): (Vec<_>, Vec<_>) =
        state.iter().partition(|((plural, _, _), _)| plural == "namespaces");
    for ((plural, ns, name), object) in namespaces.into_iter().chain(rest) {
        sim.create(group_of(plural), plural, ns, object.clone())
            .map_err(|e| anyhow::anyhow!("{plural} {ns}/{name}: {}", e.message))?;
    }
    Ok(())
}

/// An object as upstream would read it: what HNC and users set, without what the API server adds
/// (resourceVersion, uid, timestamps, managedFields, generation, a namespace's `kubernetes.io/metadata.name`
/// label, spec.finalizers and phase).
fn normalized(plural: &str, mut o: Value) -> Value {
    let metadata = o["metadata"].take();
    let mut kept = serde_json::Map::new();
    for key in ["name", "namespace", "labels", "annotations", "finalizers"] {
        if let Some(v) = metadata.get(key).filter(|v| !v.is_null() && *v != &json!({}) && *v != &json!([])) {
            kept.insert(key.to_owned(), v.clone());
        }
    }
    if let Some(labels) = kept.get_mut("labels").and_then(Value::as_object_mut) {
        labels.remove("kubernetes.io/metadata.name");
        if labels.is_empty() {
            kept.remove("labels");
        }
    }
    o["metadata"] = Value::Object(kept);
    if let Some(map) = o.as_object_mut() {
        map.remove("apiVersion");
        map.remove("kind");
        if plural == "namespaces" {
            map.remove("spec");
            map.remove("status");
        }
    }
    o
}

/// What the API server holds of the kinds in `expected`, in the test's namespaces.
async fn actual_state(client: &Client, tree: &Tree) -> anyhow::Result<State> {
    let mut state = State::new();
    for (plural, group, version, kind, namespaced) in [
        ("namespaces", "", "v1", "Namespace", false),
        ("hierarchyconfigurations", "hnc.x-k8s.io", "v1alpha2", "HierarchyConfiguration", true),
        ("subnamespaceanchors", "hnc.x-k8s.io", "v1alpha2", "SubnamespaceAnchor", true),
        ("roles", "rbac.authorization.k8s.io", "v1", "Role", true),
        ("rolebindings", "rbac.authorization.k8s.io", "v1", "RoleBinding", true),
        ("hncconfigurations", "hnc.x-k8s.io", "v1alpha2", "HNCConfiguration", false),
    ] {
        let resource = ApiResource {
            group: group.into(),
            version: version.into(),
            api_version: if group.is_empty() { version.into() } else { format!("{group}/{version}") },
            kind: kind.into(),
            plural: plural.into(),
        };
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
        for o in api.list(&ListParams::default()).await? {
            let ns = o.metadata.namespace.clone().unwrap_or_default();
            let name = o.metadata.name.clone().unwrap_or_default();
            let key = if namespaced { &ns } else { &name };
            if plural != "hncconfigurations" && !tree.parent.contains_key(key) {
                continue;
            }
            state.insert((plural.to_owned(), ns, name), normalized(plural, serde_json::to_value(&o)?));
        }
    }
    Ok(state)
}

/// The differences between two states, one line each.
fn differences(expected: &State, actual: &State) -> Vec<String> {
    let mut out = Vec::new();
    for (key, want) in expected {
        match actual.get(key) {
            None => out.push(format!("missing {key:?}")),
            Some(got) if got != want => out.push(format!("{key:?}:\n  upstream: {want}\n  now:      {got}")),
            Some(_) => {}
        }
    }
    out.extend(actual.keys().filter(|k| !expected.contains_key(*k)).map(|k| format!("unexpected {k:?}")));
    out
}

/// The HNCConfiguration status with the counts left out: upstream recomputes them itself when it starts.
fn without_counts(mut state: State) -> State {
    for ((plural, _, _), object) in state.iter_mut() {
        if plural == "hncconfigurations" {
            for r in object["status"]["resources"].as_array_mut().into_iter().flatten() {
                if let Some(m) = r.as_object_mut() {
                    m.retain(|k, _| !k.starts_with("num"));
                }
            }
        }
    }
    state
}

// ---- The probe ----

/// Requests that must be denied at every moment: editing a copy (objects webhook) and making the root a
/// child of its own grandchild (HierarchyConfiguration webhook), both dry runs.
struct Probe {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Vec<(Duration, String)>>,
}

impl Probe {
    fn start(client: Client, copy_ns: String, root: String, grandchild: String) -> Probe {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let task = tokio::spawn(async move {
            let began = Instant::now();
            let mut answers = Vec::new();
            let roles: Api<DynamicObject> = Api::namespaced_with(
                client.clone(),
                &copy_ns,
                &ApiResource::erase::<k8s_openapi::api::rbac::v1::Role>(&()),
            );
            let hcs = Api::<hnc_api::HierarchyConfiguration>::namespaced(client.clone(), &root);
            let dry = PatchParams { dry_run: true, ..Default::default() };
            while !stopping.load(Ordering::Relaxed) {
                let edit = roles
                    .patch("reader", &dry, &Patch::Merge(json!({"rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]})))
                    .await
                    .map(drop);
                answers.push((began.elapsed(), outcome("edit a copy", edit)));
                let cycle = hcs
                    .patch("hierarchy", &dry, &Patch::Merge(json!({"spec": {"parent": grandchild}})))
                    .await
                    .map(drop);
                answers.push((began.elapsed(), outcome("make a cycle", cycle)));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            answers
        });
        Probe { stop, task }
    }

    /// Stops probing; every answer with when it came.
    async fn finish(self) -> anyhow::Result<Vec<(Duration, String)>> {
        self.stop.store(true, Ordering::Relaxed);
        Ok(self.task.await?)
    }
}

/// `denied` when a webhook denied the request, else what happened instead.
fn outcome(what: &str, result: Result<(), kube::Error>) -> String {
    match result {
        Err(kube::Error::Api(s)) if s.message.contains("denied the request") && s.code < 500 => {
            "denied".into()
        }
        Err(e) => format!("{what}: {e}"),
        Ok(()) => format!("{what}: allowed"),
    }
}

// ---- The scenario ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_hnc_is_taken_over_without_a_write_or_an_admission_gap() -> anyhow::Result<()> {
    let started = Instant::now();
    let mut env = TestEnv::start(BINARY).await?;
    if env.is_real_cluster() {
        eprintln!("skipped on a real cluster: starts replicas and reads apisim's record of writes");
        return Ok(());
    }
    let certs_dir = tempfile::tempdir()?;
    let Some(cert) = upstream_certificate(certs_dir.path())? else { return Ok(()) };
    let forwarder = Forwarder::start().await?;
    let url = format!("https://localhost:{}", forwarder.addr.port());

    // The cluster as upstream HNC left it.
    let tree = Tree::new(&env);
    let root = env.ns("root");
    let sources = vec![
        Source::role(&root, "reader", &["get", "list"]),
        Source::binding(&root, "readers", "reader"),
        Source::role(&env.ns("c3"), "c3-admin", &["*"]),
    ];
    let state = upstream_state(&tree, &sources);
    // Namespaces apisim starts with that upstream manages (all but its exclusions) carry its labels too.
    let sim = env.sim().context("apisim")?;
    let existing = Api::<k8s_openapi::api::core::v1::Namespace>::all(env.client.clone());
    for ns in existing.list(&ListParams::default()).await? {
        let name = ns.metadata.name.clone().unwrap_or_default();
        if name == HNC_NAMESPACE || hnc_api::keys::DEFAULT_EXCLUDED_NAMESPACES.contains(&name.as_str()) {
            continue;
        }
        let labels = json!({"hnc.x-k8s.io/included-namespace": "true", format!("{name}.tree.hnc.x-k8s.io/depth"): "0"});
        existing
            .patch(&name, &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": labels}})))
            .await?;
    }
    load(&env, &state)?;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let secret_data: serde_json::Map<String, Value> =
        cert.iter().map(|(k, v)| (k.clone(), json!(b64(v)))).collect();
    sim.create(
        "",
        "secrets",
        HNC_NAMESPACE,
        json!({"metadata": {"name": "hnc-webhook-server-cert", "namespace": HNC_NAMESPACE}, "type": "Opaque", "data": secret_data}),
    )
    .map_err(|e| anyhow::anyhow!(e.message))?;
    let ca_bundle = b64(&cert["ca.crt"]);
    for (plural, object) in [
        ("validatingwebhookconfigurations", upstream_validating(&url, &ca_bundle)),
        ("mutatingwebhookconfigurations", upstream_mutating(&url, &ca_bundle)),
    ] {
        sim.create("admissionregistration.k8s.io", plural, "", object)
            .map_err(|e| anyhow::anyhow!(e.message))?;
    }
    let before = actual_state(&env.client, &tree).await?;
    let vwc_api: Api<DynamicObject> = Api::all_with(
        env.client.clone(),
        &ApiResource::erase::<k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration>(
            &(),
        ),
    );
    let mwc_api: Api<DynamicObject> = Api::all_with(
        env.client.clone(),
        &ApiResource::erase::<k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration>(&()),
    );
    let secrets = Api::<k8s_openapi::api::core::v1::Secret>::namespaced(env.client.clone(), HNC_NAMESPACE);
    let vwc_before = vwc_api.get("hnc-validating-webhook-configuration").await?;
    let mwc_before = mwc_api.get("hnc-mutating-webhook-configuration").await?;
    let secret_before = secrets.get("hnc-webhook-server-cert").await?;
    let built = started.elapsed();

    // Step 1: a webhooks-only replica joins the webhook endpoints, beside upstream's pods. It serves
    // upstream's certificate, which upstream's caBundle trusts.
    let base = format!("--webhook-url-base={url}");
    let bridge = env.start_replica("bridge", &[&base, "--webhook-server-port=0", "--webhooks-only"]).await?;
    env.replica(bridge).wait_ready(CONVERGE).await?;
    let bridge_addr =
        eventually(CONVERGE, "the bridge to serve", || async { env.webhook_addr(bridge) }).await?;
    forwarder.set_backends(vec![bridge_addr]);
    let probe_started = started.elapsed();
    let probe = Probe::start(env.client.clone(), env.ns("g0-0"), root.clone(), env.ns("g0-0"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let phase_full = started.elapsed();

    // Step 2: upstream's manager is gone; this controller's full replicas start, adopt the certificate and
    // the configurations, and join the endpoints once ready.
    let args = full_args(&base);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let a = env.start_replica("a", &args).await?;
    let b = env.start_replica("b", &args).await?;
    let mut backends = vec![bridge_addr];
    for r in [a, b] {
        env.replica(r).wait_ready(CONVERGE).await?;
        backends.push(eventually(CONVERGE, "a replica to serve", || async { env.webhook_addr(r) }).await?);
        forwarder.set_backends(backends.clone());
    }
    for r in [a, b] {
        env.replica(r).wait_idle(CONVERGE).await?;
    }
    tokio::time::sleep(SETTLE).await;
    let phase_leave = started.elapsed();

    // Step 3: the webhooks-only replica leaves the endpoints, then stops.
    forwarder.set_backends(backends[1..].to_vec());
    tokio::time::sleep(Duration::from_millis(500)).await;
    env.stop_replica(bridge)?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let answers = probe.finish().await?;
    let switched = started.elapsed();

    // Admission answered every probe, in every step.
    let failures: Vec<String> =
        answers.iter().filter(|(_, o)| o != "denied").map(|(at, o)| format!("{at:?}: {o}")).collect();
    ensure!(
        failures.is_empty(),
        "admission failed during the switch (probing from {probe_started:?}, full replicas from {phase_full:?}, \
         bridge leaving at {phase_leave:?}, done at {switched:?}; times from the probe's start):\n{}",
        failures.join("\n")
    );
    for (from, to, step) in [
        (probe_started, phase_full, "the bridge alone"),
        (phase_full, phase_leave, "the takeover"),
        (phase_leave, switched, "the bridge leaving"),
    ] {
        let n = answers.iter().filter(|(at, _)| (from..to).contains(&(probe_started + *at))).count();
        ensure!(n >= 4, "only {n} probes during {step}");
    }

    // Not one write to what upstream left, and every other write listed.
    let mut writes = Vec::new();
    for id in ["bridge", "a", "b"] {
        writes.extend(env.writes_by(id).into_iter().map(|w| (id, w)));
    }
    let mut unexplained = Vec::new();
    let mut vwc_writes = 0;
    let mut config_writes = 0;
    for (id, w) in &writes {
        let line = format!("{id}: {} {} {}/{} → {}", w.verb, w.resource, w.namespace, w.name, w.code);
        match (w.resource.as_str(), w.namespace.as_str(), w.name.as_str()) {
            // Replica coordination: membership, shard and leader Leases; the shard assignment ConfigMap.
            ("leases", HNC_NAMESPACE, _) => {}
            ("configmaps", HNC_NAMESPACE, "hnc-shard-assignment") => {}
            // The objects webhook's rules narrowed from upstream v1.1's every-namespaced-resource rule to the
            // propagated types; endpoint, caBundle and every other entry unchanged (checked below).
            ("validatingwebhookconfigurations", "", "hnc-validating-webhook-configuration") => {
                vwc_writes += 1
            }
            // The leader's counts are those of the trees it owns (README): with the tree on the other replica
            // they differ from upstream's, and the status is written once; its shape is checked below.
            ("hncconfigurations", "", "config") => config_writes += 1,
            _ => unexplained.push(line),
        }
    }
    ensure!(unexplained.is_empty(), "writes beyond coordination:\n{}", unexplained.join("\n"));
    ensure!(
        vwc_writes <= 1 && config_writes <= 1,
        "{vwc_writes} configuration and {config_writes} config writes"
    );
    ensure!(
        env.writes_by("bridge").iter().all(|w| w.resource == "leases"),
        "the webhooks-only replica wrote"
    );
    let vwc_after = vwc_api.get("hnc-validating-webhook-configuration").await?;
    let (mut hooks_before, hooks_after) =
        (vwc_before.data["webhooks"].clone(), vwc_after.data["webhooks"].clone());
    hooks_before[2]["rules"] = hooks_after[2]["rules"].clone();
    ensure!(
        hooks_before == hooks_after,
        "the validating configuration changed beyond the objects rules:\n{hooks_after}"
    );
    // (kube-apiserver adds `scope: "*"` to a rule without one.)
    let mut rules = hooks_after[2]["rules"].clone();
    if let Some(rule) = rules[0].as_object_mut() {
        rule.retain(|k, v| k != "scope" || v != "*");
    }
    ensure!(
        rules
            == json!([{"apiGroups": ["rbac.authorization.k8s.io"], "apiVersions": ["*"], "operations": ["CREATE", "UPDATE", "DELETE"], "resources": ["rolebindings", "roles"]}]),
        "objects rules: {}",
        hooks_after[2]["rules"]
    );
    ensure!(
        mwc_api.get("hnc-mutating-webhook-configuration").await?.data == mwc_before.data,
        "mutating configuration changed"
    );
    ensure!(
        secrets.get("hnc-webhook-server-cert").await?.data == secret_before.data,
        "certificate Secret changed"
    );
    let now = actual_state(&env.client, &tree).await?;
    let diff = differences(&without_counts(before.clone()), &without_counts(now));
    ensure!(diff.is_empty(), "state changed by the takeover:\n{}", diff.join("\n"));
    let settled = started.elapsed();

    // Changes made afterwards are this controller's: a new source, an edited source, a new subnamespace.
    let mut tree_after = tree.clone();
    let mut sources_after = sources.clone();
    let new_sub = env.ns("c0-sub");
    tree_after.parent.insert(new_sub.clone(), Some(env.ns("c0")));
    tree_after.subnamespaces.insert(new_sub.clone(), env.ns("c0"));
    sources_after.push(Source::role(&root, "auditor", &["watch"]));
    sources_after[2] = Source::role(&env.ns("c3"), "c3-admin", &["get"]);
    let dynamic = |s: &Source| {
        let resource = if s.plural == "roles" {
            ApiResource::erase::<k8s_openapi::api::rbac::v1::Role>(&())
        } else {
            ApiResource::erase::<k8s_openapi::api::rbac::v1::RoleBinding>(&())
        };
        Api::<DynamicObject>::namespaced_with(env.client.clone(), &s.namespace, &resource)
    };
    dynamic(&sources_after[3])
        .create(&PostParams::default(), &serde_json::from_value(sources_after[3].object())?)
        .await?;
    dynamic(&sources_after[2])
        .patch(
            "c3-admin",
            &PatchParams::default(),
            &Patch::Merge(json!({"rules": sources_after[2].body["rules"]})),
        )
        .await?;
    env.create_anchor(&env.ns("c0"), &new_sub).await?;
    let expected: State = upstream_state(&tree_after, &sources_after)
        .into_iter()
        .map(|(key, object)| {
            let object = normalized(&key.0, object);
            (key, object)
        })
        .collect();
    let expected = without_counts(expected);
    // Upstream's own state read back normalizes to what was built: the comparison below holds its objects to
    // exactly what upstream writes.
    let built_normalized: State =
        state.iter().map(|(key, object)| (key.clone(), normalized(&key.0, object.clone()))).collect();
    ensure!(
        differences(&built_normalized, &before).is_empty(),
        "{:?}",
        differences(&built_normalized, &before)
    );
    let deadline = Instant::now() + CONVERGE;
    loop {
        let diff = differences(&expected, &without_counts(actual_state(&env.client, &tree_after).await?));
        if diff.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            bail!("changes not propagated as upstream would within {CONVERGE:?}:\n{}", diff.join("\n"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Rollback: with this controller stopped, every object is as upstream leaves it (counts aside, which
    // upstream recomputes), the certificate and the configurations are upstream's: upstream reads them as
    // its own.
    env.stop_replica(a)?;
    env.stop_replica(b)?;
    let last = without_counts(actual_state(&env.client, &tree_after).await?);
    let diff = differences(&expected, &last);
    ensure!(diff.is_empty(), "not as upstream leaves it:\n{}", diff.join("\n"));
    ensure!(
        secrets.get("hnc-webhook-server-cert").await?.data == secret_before.data,
        "certificate Secret changed"
    );
    let config = &last[&("hncconfigurations".to_owned(), String::new(), "config".to_owned())];
    ensure!(config["status"].get("conditions").is_none(), "conditions on config: {config}");
    eprintln!(
        "built upstream's state in {built:?}; switched at {switched:?} ({} probes, all denied); settled and \
         checked at {settled:?}; changes propagated and rollback state checked at {:?}",
        answers.len(),
        started.elapsed()
    );
    Ok(())
}
