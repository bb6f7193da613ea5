//! `/v1/keys`: the caller's API keys.

use gpudev_api_types::keys::{KeyInfo, KeyList, RotateRequest, RotateResponse};

use crate::client::Client;
use crate::error::ClientError;

impl Client {
    /// The caller's keys.
    pub async fn list_keys(&self) -> Result<KeyList, ClientError> {
        self.get(&["v1", "keys"]).await
    }

    /// A new key with a fresh lifetime; `revoke_current` also revokes the key of this request.
    pub async fn rotate_key(&self, revoke_current: bool) -> Result<RotateResponse, ClientError> {
        self.post(&["v1", "keys", "rotate"], &RotateRequest { revoke_current })
            .await
    }

    /// Revokes one of the caller's keys.
    pub async fn revoke_key(&self, key_id: i64) -> Result<KeyInfo, ClientError> {
        self.delete(&["v1", "keys", &key_id.to_string()]).await
    }
}
