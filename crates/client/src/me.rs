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
