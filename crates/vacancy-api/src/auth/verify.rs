//! Verifying bearer tokens: JWTs signed with asymmetric keys published as JWKS.
//!
//! Keys come from a JWKS file, a JWKS document given inline, and a JWKS URL fetched at start
//! and refreshed periodically (a failed refresh keeps the keys it had). A token is accepted
//! only when its header names an asymmetric algorithm (never `none`, never HS*: a public key
//! must not double as an HMAC secret), a key of the same family verifies its signature (the
//! one with its `kid`, when it names one), its `iss` and `aud` are the configured ones, and
//! `exp`/`nbf` hold on the service's clock within the configured leeway.
//!
//! A verified token is remembered (bounded, forgotten whenever the keys change), so a client
//! reusing its token pays for the signature check once; `exp` and `nbf` are still judged on
//! every request.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use jiff::Timestamp;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use super::{AuthFailure, Role};

/// Where keys come from and what tokens must say.
#[derive(Clone)]
pub struct AuthConfig {
    /// A JWKS file (`--jwks-file`).
    pub jwks_file: Option<PathBuf>,
    /// A JWKS URL fetched at start and every `jwks_refresh` (`--jwks-url`).
    pub jwks_url: Option<String>,
    /// A JWKS document given inline (tests, embedding programs).
    pub jwks_inline: Option<String>,
    /// How often the JWKS URL is fetched again.
    pub jwks_refresh: Duration,
    /// The only accepted `iss`.
    pub issuer: String,
    /// The accepted `aud` (a token's `aud` must contain it).
    pub audience: String,
    /// Clock skew tolerated on `exp` and `nbf`.
    pub leeway: Duration,
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field("jwks_file", &self.jwks_file)
            .field("jwks_url", &self.jwks_url)
            .field(
                "jwks_inline",
                &self.jwks_inline.as_ref().map(|_| "<inline JWKS>"),
            )
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

impl AuthConfig {
    /// Keys from one inline JWKS document, with the default leeway and refresh.
    pub fn inline(jwks: String, issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        Self {
            jwks_file: None,
            jwks_url: None,
            jwks_inline: Some(jwks),
            jwks_refresh: Duration::from_secs(300),
            issuer: issuer.into(),
            audience: audience.into(),
            leeway: Duration::from_secs(30),
        }
    }
}

/// Asymmetric algorithms a token may be signed with.
const ACCEPTED: [Algorithm; 9] = [
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
];

struct Key {
    kid: Option<String>,
    key: DecodingKey,
}

/// The claims a verified token carries that the service uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedClaims {
    pub subject: String,
    pub role: Role,
}

/// Most verified tokens remembered; the memory is cleared when full.
const REMEMBERED_TOKENS: usize = 10_000;

/// What is remembered of a verified token.
#[derive(Clone)]
struct Remembered {
    claims: VerifiedClaims,
    exp: i64,
    nbf: Option<i64>,
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    role: String,
    exp: i64,
    nbf: Option<i64>,
}

/// Verifies tokens against the current key set.
pub struct Verifier {
    config: AuthConfig,
    /// Keys from the file and inline document (fixed) and from the URL (replaced on refresh).
    fixed: Vec<Key>,
    fetched: RwLock<Arc<Vec<Key>>>,
    /// Tokens whose signature and claims were verified, by token text.
    verified: RwLock<HashMap<String, Remembered>>,
    http: reqwest::Client,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// Loads the file and inline keys; fetches nothing (see [`Verifier::load`]).
    pub fn new(config: AuthConfig) -> anyhow::Result<Self> {
        crate::tls::install_crypto_provider();
        let mut fixed = Vec::new();
        if let Some(path) = &config.jwks_file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("reading JWKS file {}: {e}", path.display()))?;
            fixed.extend(parse_jwks(&text)?);
        }
        if let Some(text) = &config.jwks_inline {
            fixed.extend(parse_jwks(text)?);
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()?;
        Ok(Self {
            config,
            fixed,
            fetched: RwLock::new(Arc::new(Vec::new())),
            verified: RwLock::new(HashMap::new()),
            http,
        })
    }

    /// Loads the file and inline keys and fetches the URL's once. Fails when no key at all
    /// can be had: a service that can verify nothing must not start.
    pub async fn load(config: AuthConfig) -> anyhow::Result<Self> {
        let verifier = Self::new(config)?;
        if verifier.config.jwks_url.is_some()
            && let Err(error) = verifier.refresh().await
        {
            if verifier.fixed.is_empty() {
                return Err(error.context("fetching the JWKS URL"));
            }
            tracing::warn!(error = %error, "JWKS URL unreachable at start; using the JWKS file");
        }
        if verifier.fixed.is_empty() && verifier.fetched_keys().is_empty() {
            anyhow::bail!("no usable public key in the configured JWKS");
        }
        Ok(verifier)
    }

    /// Fetches the JWKS URL again and replaces the keys it gave before.
    pub async fn refresh(&self) -> anyhow::Result<usize> {
        let Some(url) = &self.config.jwks_url else {
            return Ok(0);
        };
        let text = self
            .http
            .get(url)
            .send()
            .await?
            .error_for_status()?
            .text()
            .await?;
        let keys = parse_jwks(&text)?;
        let count = keys.len();
        *self.fetched.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(keys);
        // A retired key's tokens must not live on in memory.
        self.verified
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        Ok(count)
    }

    fn fetched_keys(&self) -> Arc<Vec<Key>> {
        self.fetched
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Refreshes the URL's keys every `jwks_refresh` until `stop`.
    pub async fn refresh_until(self: Arc<Self>, stop: CancellationToken) {
        if self.config.jwks_url.is_none() {
            return;
        }
        let period = self.config.jwks_refresh.max(Duration::from_secs(1));
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(period) => {}
            }
            match self.refresh().await {
                Ok(keys) => tracing::debug!(keys, "JWKS refreshed"),
                Err(error) => {
                    tracing::warn!(error = %error, "JWKS refresh failed; keeping the keys we had")
                }
            }
        }
    }

    /// Verifies `token` at `now`.
    pub fn verify(&self, token: &str, now: Timestamp) -> Result<VerifiedClaims, AuthFailure> {
        let known = self
            .verified
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(token)
            .cloned();
        let remembered = match known {
            Some(remembered) => remembered,
            None => {
                let remembered = self.verify_signed(token)?;
                let mut verified = self.verified.write().unwrap_or_else(|p| p.into_inner());
                if verified.len() >= REMEMBERED_TOKENS {
                    verified.clear();
                }
                verified.insert(token.to_owned(), remembered.clone());
                remembered
            }
        };
        self.judge_time(&remembered, now)?;
        Ok(remembered.claims)
    }

    /// Checks the signature, issuer, audience, subject and role (not the time).
    fn verify_signed(&self, token: &str) -> Result<Remembered, AuthFailure> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| match e.kind() {
            ErrorKind::InvalidAlgorithmName => AuthFailure::Algorithm,
            _ => AuthFailure::Malformed,
        })?;
        if !ACCEPTED.contains(&header.alg) {
            return Err(AuthFailure::Algorithm);
        }
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_audience(&[&self.config.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        // Time is judged below on the service's clock, not the system's.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        let fetched = self.fetched_keys();
        let candidates = self.fixed.iter().chain(fetched.iter()).filter(|k| {
            k.key.family() == header.alg.family() && (header.kid.is_none() || k.kid == header.kid)
        });
        let mut failure = AuthFailure::Signature;
        for candidate in candidates {
            match jsonwebtoken::decode::<Claims>(token, &candidate.key, &validation) {
                Ok(data) => return self.judge(data.claims),
                Err(e) => {
                    failure = match e.kind() {
                        ErrorKind::InvalidIssuer => AuthFailure::Issuer,
                        ErrorKind::InvalidAudience => AuthFailure::Audience,
                        ErrorKind::MissingRequiredClaim(_)
                        | ErrorKind::InvalidClaimFormat(_)
                        | ErrorKind::Json(_) => AuthFailure::Claims,
                        ErrorKind::InvalidSignature
                        | ErrorKind::InvalidEcdsaKey
                        | ErrorKind::InvalidEddsaKey
                        | ErrorKind::InvalidRsaKey(_)
                        | ErrorKind::InvalidKeyFormat
                        | ErrorKind::InvalidAlgorithm => AuthFailure::Signature,
                        _ => AuthFailure::Malformed,
                    };
                    // Only a bad signature may be another key's token; anything else is final.
                    if failure != AuthFailure::Signature {
                        return Err(failure);
                    }
                }
            }
        }
        Err(failure)
    }

    fn judge(&self, claims: Claims) -> Result<Remembered, AuthFailure> {
        let role = Role::parse(&claims.role).ok_or(AuthFailure::Claims)?;
        if !crate::dto::could_exist(&claims.sub) {
            return Err(AuthFailure::Claims);
        }
        Ok(Remembered {
            claims: VerifiedClaims {
                subject: claims.sub,
                role,
            },
            exp: claims.exp,
            nbf: claims.nbf,
        })
    }

    /// `exp` and `nbf` at `now`, with the configured leeway.
    fn judge_time(&self, token: &Remembered, now: Timestamp) -> Result<(), AuthFailure> {
        let now = now.as_second();
        let leeway = i64::try_from(self.config.leeway.as_secs()).unwrap_or(i64::MAX);
        if now.saturating_sub(leeway) >= token.exp {
            return Err(AuthFailure::Expired);
        }
        if token
            .nbf
            .is_some_and(|nbf| now.saturating_add(leeway) < nbf)
        {
            return Err(AuthFailure::NotYetValid);
        }
        Ok(())
    }
}

/// The usable keys of a JWKS document: asymmetric keys for signing (`use` absent or `sig`).
fn parse_jwks(text: &str) -> anyhow::Result<Vec<Key>> {
    let set: JwkSet = serde_json::from_str(text)?;
    let mut keys = Vec::new();
    for jwk in &set.keys {
        if matches!(
            jwk.common.public_key_use,
            Some(jsonwebtoken::jwk::PublicKeyUse::Encryption)
        ) {
            continue;
        }
        match DecodingKey::from_jwk(jwk) {
            Ok(key) if key.family() != jsonwebtoken::AlgorithmFamily::Hmac => keys.push(Key {
                kid: jwk.common.key_id.clone(),
                key,
            }),
            Ok(_) => {
                tracing::warn!(kid = ?jwk.common.key_id, "ignoring a symmetric key in the JWKS")
            }
            Err(error) => {
                tracing::warn!(kid = ?jwk.common.key_id, %error, "ignoring an unusable JWKS key")
            }
        }
    }
    Ok(keys)
}
