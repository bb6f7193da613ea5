//! The Helm chart's identities on the real control plane: its ServiceAccounts, Roles,
//! RoleBindings, ClusterRoles and ClusterRoleBindings, rendered by the real Helm engine
//! (`scripts/render-chart`) and applied as they are, with a token minted for each account
//! through the TokenRequest API. Programs run with those tokens get exactly the chart's rights.

use std::path::Path;
use std::process::{Command, Stdio};

use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};
use serde_json::{Value, json};

use super::ControlPlane;
use crate::error::{Context, Error, Result};

/// Tokens of the chart's ServiceAccounts, one per program that talks to Kubernetes.
#[derive(Debug, Clone)]
pub struct ChartAccounts {
    /// The namespace the chart was "installed" in (its ServiceAccounts live there).
    pub release_namespace: String,
    /// The processor's token.
    pub processor: String,
    /// The expiry CronJob's token.
    pub expiry: String,
    /// The availability CronJob's token.
    pub availability: String,
}

impl ControlPlane {
    /// Renders the chart for a release in `release_namespace` whose dev boxes go to
    /// `user_namespace` (both must exist), applies its ServiceAccounts and RBAC objects, and
    /// mints an hour-long token for the processor's, expiry's and availability's accounts.
    ///
    /// # Panics
    /// When the chart cannot be rendered or an object cannot be created.
    #[expect(clippy::panic, reason = "test helper")]
    pub async fn install_chart_rbac(
        &self,
        release_namespace: &str,
        user_namespace: &str,
    ) -> ChartAccounts {
        self.try_install_chart_rbac(release_namespace, user_namespace)
            .await
            .unwrap_or_else(|e| panic!("gpudev-testkit: the chart's RBAC: {e}"))
    }

    async fn try_install_chart_rbac(
        &self,
        release_namespace: &str,
        user_namespace: &str,
    ) -> Result<ChartAccounts> {
        let values = json!({ "userNamespace": { "name": user_namespace, "create": false } });
        let text = render(release_namespace, &values)?;
        let docs: Vec<Value> = serde_saphyr::from_multiple(&text)
            .map_err(|e| Error::msg(format!("parsing the rendered chart: {e}")))?;
        let client = self.client().await;
        let pp = PostParams::default();
        let mut accounts = Vec::new();
        for doc in docs.into_iter().filter(Value::is_object) {
            let kind = doc["kind"].as_str().unwrap_or_default().to_owned();
            let namespaced = match kind.as_str() {
                "ServiceAccount" | "Role" | "RoleBinding" => true,
                "ClusterRole" | "ClusterRoleBinding" => false,
                _ => continue,
            };
            let what = format!("{kind} {}", doc["metadata"]["name"]);
            let object: DynamicObject = serde_json::from_value(doc).context(&what)?;
            let types = object
                .types
                .clone()
                .ok_or_else(|| Error::msg(format!("{what} has no apiVersion")))?;
            let gvk = GroupVersionKind::try_from(&types).context(&what)?;
            let resource = ApiResource::from_gvk(&gvk);
            let api: Api<DynamicObject> = if namespaced {
                let namespace = object
                    .metadata
                    .namespace
                    .as_deref()
                    .unwrap_or(release_namespace);
                Api::namespaced_with(client.clone(), namespace, &resource)
            } else {
                Api::all_with(client.clone(), &resource)
            };
            api.create(&pp, &object).await.context(&what)?;
            if kind == "ServiceAccount" {
                accounts.push(object.metadata.name.unwrap_or_default());
            }
        }
        let mut tokens = Vec::new();
        for component in ["processor", "expiry", "availability"] {
            let name = accounts
                .iter()
                .find(|a| a.ends_with(&format!("-{component}")))
                .ok_or_else(|| {
                    Error::msg(format!("the chart has no ServiceAccount for {component}"))
                })?;
            let request: TokenRequest = serde_json::from_value(json!({
                "spec": { "audiences": [], "expirationSeconds": 3600 }
            }))
            .context("building a TokenRequest")?;
            let answer: TokenRequest =
                Api::<ServiceAccount>::namespaced(client.clone(), release_namespace)
                    .create_subresource("token", name, &PostParams::default(), &request)
                    .await
                    .context(format!("requesting a token for {name}"))?;
            let token = answer
                .status
                .map(|s| s.token)
                .ok_or_else(|| Error::msg(format!("no token in the answer for {name}")))?;
            tokens.push(token);
        }
        let [processor, expiry, availability]: [String; 3] =
            tokens.try_into().map_err(|_| Error::msg("three tokens"))?;
        Ok(ChartAccounts {
            release_namespace: release_namespace.to_owned(),
            processor,
            expiry,
            availability,
        })
    }
}

/// The chart rendered by `scripts/render-chart`.
fn render(namespace: &str, values: &Value) -> Result<String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/render-chart");
    let out = Command::new(&script)
        .args([
            "--namespace",
            namespace,
            "--values-json",
            &values.to_string(),
        ])
        .stdin(Stdio::null())
        .output()
        .context("running scripts/render-chart")?;
    if !out.status.success() {
        return Err(Error::msg(format!(
            "scripts/render-chart failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    String::from_utf8(out.stdout).context("reading the rendered chart")
}
