//! Dev mode: a local ES256 key pair for trying the API without an identity provider.
//!
//! `vacancy serve` with no JWKS configured creates (or reuses) `private.pem` and `jwks.json`
//! under a keys folder (`./data/dev-keys/` by default) and trusts only that JWKS;
//! `vacancy token` mints tokens with the private key. The same type gives tests and the
//! benchmark an in-memory key pair. Never for production: anyone who can read the folder can
//! mint an admin token.

use std::path::Path;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::SecretKey;
use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::Role;

/// The issuer of dev-mode tokens.
pub const DEV_ISSUER: &str = "vacancy-dev";
/// The audience of dev-mode tokens.
pub const DEV_AUDIENCE: &str = "vacancy";

const PRIVATE_KEY_FILE: &str = "private.pem";
const JWKS_FILE: &str = "jwks.json";

/// An ES256 key pair with its key id.
pub struct DevKeys {
    pem: String,
    kid: String,
    public_jwk: serde_json::Value,
}

impl std::fmt::Debug for DevKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevKeys")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// The claims of a minted token. Public so tests can mint wrong ones on purpose.
#[derive(Debug, Clone, Serialize)]
pub struct MintClaims {
    pub sub: String,
    pub role: String,
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    pub exp: i64,
}

impl MintClaims {
    /// Dev-mode claims for `sub` as `role`, valid from `now_secs` for `ttl_secs`.
    pub fn new(sub: &str, role: Role, now_secs: i64, ttl_secs: i64) -> Self {
        Self {
            sub: sub.to_owned(),
            role: role.as_str().to_owned(),
            iss: DEV_ISSUER.to_owned(),
            aud: DEV_AUDIENCE.to_owned(),
            iat: now_secs,
            nbf: Some(now_secs),
            exp: now_secs.saturating_add(ttl_secs),
        }
    }
}

impl DevKeys {
    /// A fresh key pair, in memory.
    pub fn generate() -> anyhow::Result<Self> {
        let secret = SecretKey::random(&mut rand_core::OsRng);
        Self::from_secret(&secret)
    }

    fn from_secret(secret: &SecretKey) -> anyhow::Result<Self> {
        let pem = secret
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| anyhow::anyhow!("encoding the private key: {e}"))?
            .to_string();
        let jwk_text = secret.public_key().to_jwk_string();
        let kid = crate::extract::hex(&Sha256::digest(jwk_text.as_bytes())[..8]);
        let mut public_jwk: serde_json::Value = serde_json::from_str(&jwk_text)?;
        if let Some(object) = public_jwk.as_object_mut() {
            object.insert("kid".into(), kid.clone().into());
            object.insert("alg".into(), "ES256".into());
            object.insert("use".into(), "sig".into());
        }
        Ok(Self {
            pem,
            kid,
            public_jwk,
        })
    }

    /// Reads the key pair under `dir`.
    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        let path = dir.join(PRIVATE_KEY_FILE);
        let pem = std::fs::read_to_string(&path).map_err(|e| {
            anyhow::anyhow!(
                "reading {}: {e} (run `vacancy serve` once in dev mode)",
                path.display()
            )
        })?;
        let secret = SecretKey::from_pkcs8_pem(&pem)
            .map_err(|e| anyhow::anyhow!("{} is not a P-256 PKCS#8 key: {e}", path.display()))?;
        Self::from_secret(&secret)
    }

    /// Reads the key pair under `dir`, or creates one there; (re)writes its JWKS either way.
    pub fn load_or_create(dir: &Path) -> anyhow::Result<Self> {
        let keys = if dir.join(PRIVATE_KEY_FILE).exists() {
            Self::load(dir)?
        } else {
            std::fs::create_dir_all(dir)?;
            let keys = Self::generate()?;
            write_private(&dir.join(PRIVATE_KEY_FILE), &keys.pem)?;
            keys
        };
        std::fs::write(dir.join(JWKS_FILE), keys.jwks())?;
        Ok(keys)
    }

    /// The path of the JWKS `load_or_create` writes under `dir`.
    pub fn jwks_path(dir: &Path) -> std::path::PathBuf {
        dir.join(JWKS_FILE)
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key as a JWKS document.
    pub fn jwks(&self) -> String {
        serde_json::json!({ "keys": [self.public_jwk] }).to_string()
    }

    /// A signed ES256 token carrying `claims`.
    pub fn mint(&self, claims: &MintClaims) -> anyhow::Result<String> {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        let key = EncodingKey::from_ec_pem(self.pem.as_bytes())?;
        Ok(jsonwebtoken::encode(&header, claims, &key)?)
    }
}

#[cfg(unix)]
fn write_private(path: &Path, pem: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(pem.as_bytes())?;
    Ok(())
}

#[cfg(not(unix))]
fn write_private(path: &Path, pem: &str) -> anyhow::Result<()> {
    Ok(std::fs::write(path, pem)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_keys_are_created_once_and_reused() {
        let dir = std::env::temp_dir().join(format!("vacancy-dev-keys-{}", uuid::Uuid::now_v7()));
        let first = DevKeys::load_or_create(&dir).expect("create");
        let again = DevKeys::load_or_create(&dir).expect("reuse");
        assert_eq!(first.kid(), again.kid());
        let jwks = std::fs::read_to_string(DevKeys::jwks_path(&dir)).expect("jwks written");
        assert_eq!(jwks, first.jwks());
        assert!(
            !jwks.contains("\"d\""),
            "the JWKS must not carry the private key"
        );
        let token = again
            .mint(&MintClaims::new("alice", Role::Host, 0, 60))
            .expect("mint");
        assert_eq!(token.split('.').count(), 3);
        std::fs::remove_dir_all(&dir).ok();
    }
}
