//! `/v1/me`: identity, quotas and SSH keys.

use gpudev_api_types::me::{MeResponse, SshKeyList, SshKeysRequest};

use crate::client::Client;
use crate::error::ClientError;

impl Client {
    /// Identity, role, current key, quotas and usage.
    pub async fn me(&self) -> Result<MeResponse, ClientError> {
        self.get(&["v1", "me"]).await
    }

    /// The registered SSH public keys.
    pub async fn ssh_keys(&self) -> Result<SshKeyList, ClientError> {
        self.get(&["v1", "me", "ssh-keys"]).await
    }

    /// Replaces the registered SSH public keys with `keys` (OpenSSH lines).
    pub async fn set_ssh_keys(&self, keys: &[String]) -> Result<SshKeyList, ClientError> {
        self.put(
            &["v1", "me", "ssh-keys"],
            &SshKeysRequest {
                keys: keys.to_vec(),
            },
        )
        .await
    }
}

impl Client {
    /// A one-time link that signs the caller in to the web console.
    pub async fn console_link(
        &self,
    ) -> Result<gpudev_api_types::console::ConsoleLink, ClientError> {
        self.post(&["v1", "console", "links"], &serde_json::json!({}))
            .await
    }

    /// The full URL of a console path on this server.
    pub fn console_url(&self, path: &str) -> String {
        let base = self.base_url().as_str().trim_end_matches('/');
        format!("{base}{path}")
    }
}
