//! `jsonwebtoken`'s crypto on ring: signature *verification* only, for the asymmetric
//! algorithms [`super::jwks`] may be configured with (RS*, PS*, ES256, ES384).
//!
//! ring is already in the binary (rustls uses it for TLS), whereas `jsonwebtoken`'s own
//! backends would add aws-lc (about a megabyte on a 4 MB zip budget) or the `rsa` crate
//! (RUSTSEC-2023-0071). Signing and HMAC are refused: ingest never signs a token, and an HMAC
//! "verification" against a public key is the algorithm-confusion attack.

use jsonwebtoken::crypto::{CryptoProvider, JwtSigner, JwtVerifier, KeyUtils};
use jsonwebtoken::errors::{Error, ErrorKind};
use jsonwebtoken::signature::{self, Verifier};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, DecodingKeyKind, EncodingKey};
use ring::signature as ring_sig;

/// The provider ingest installs when the build selected none (the production build).
pub static RING_VERIFY_ONLY: CryptoProvider = CryptoProvider {
    signer_factory: no_signer,
    verifier_factory: verifier,
    key_utils: KeyUtils {
        rsa_pub_components_from_private_key: |_| Err(unsupported()),
        rsa_pub_components_from_public_key: |_| Err(unsupported()),
        ec_pub_components_from_private_key: |_, _| Err(unsupported()),
        ed_pub_components_from_private_key: |_, _| Err(unsupported()),
        compute_digest: |_, _| Err(unsupported()),
    },
};

/// Installs [`RING_VERIFY_ONLY`] as `jsonwebtoken`'s process-wide provider, unless a build
/// that turns on one of its backend features (none in this workspace) already resolved one.
pub fn ensure_installed() {
    if CryptoProvider::try_get_default().is_none() {
        // Another thread may win the race; either way a provider is installed.
        let _ = RING_VERIFY_ONLY.install_default();
    }
}

fn unsupported() -> Error {
    ErrorKind::Provider("not supported by ingest's verify-only provider".into()).into()
}

fn no_signer(_: &Algorithm, _: &EncodingKey) -> Result<Box<dyn JwtSigner>, Error> {
    Err(unsupported())
}

fn verifier(algorithm: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>, Error> {
    let params: &'static ring_sig::RsaParameters = match algorithm {
        Algorithm::RS256 => &ring_sig::RSA_PKCS1_2048_8192_SHA256,
        Algorithm::RS384 => &ring_sig::RSA_PKCS1_2048_8192_SHA384,
        Algorithm::RS512 => &ring_sig::RSA_PKCS1_2048_8192_SHA512,
        Algorithm::PS256 => &ring_sig::RSA_PSS_2048_8192_SHA256,
        Algorithm::PS384 => &ring_sig::RSA_PSS_2048_8192_SHA384,
        Algorithm::PS512 => &ring_sig::RSA_PSS_2048_8192_SHA512,
        Algorithm::ES256 => {
            return ec_verifier(*algorithm, &ring_sig::ECDSA_P256_SHA256_FIXED, key)
        }
        Algorithm::ES384 => {
            return ec_verifier(*algorithm, &ring_sig::ECDSA_P384_SHA384_FIXED, key)
        }
        // HMAC (never with a public key) and EdDSA are not offered.
        _ => return Err(ErrorKind::InvalidAlgorithm.into()),
    };
    if key.family() != AlgorithmFamily::Rsa {
        return Err(ErrorKind::InvalidKeyFormat.into());
    }
    Ok(Box::new(RsaVerifier {
        algorithm: *algorithm,
        params,
        key: key.clone(),
    }))
}

fn ec_verifier(
    algorithm: Algorithm,
    params: &'static ring_sig::EcdsaVerificationAlgorithm,
    key: &DecodingKey,
) -> Result<Box<dyn JwtVerifier>, Error> {
    if key.family() != AlgorithmFamily::Ec {
        return Err(ErrorKind::InvalidKeyFormat.into());
    }
    Ok(Box::new(EcVerifier {
        algorithm,
        params,
        key: key.clone(),
    }))
}

struct RsaVerifier {
    algorithm: Algorithm,
    params: &'static ring_sig::RsaParameters,
    key: DecodingKey,
}

impl Verifier<Vec<u8>> for RsaVerifier {
    fn verify(&self, msg: &[u8], sig: &Vec<u8>) -> Result<(), signature::Error> {
        let checked = match self.key.kind() {
            DecodingKeyKind::RsaModulusExponent { n, e } => {
                ring_sig::RsaPublicKeyComponents { n, e }.verify(self.params, msg, sig)
            }
            DecodingKeyKind::SecretOrDer(der) => {
                ring_sig::UnparsedPublicKey::new(self.params, der).verify(msg, sig)
            }
        };
        checked.map_err(|_| signature::Error::new())
    }
}

impl JwtVerifier for RsaVerifier {
    fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
}

struct EcVerifier {
    algorithm: Algorithm,
    params: &'static ring_sig::EcdsaVerificationAlgorithm,
    key: DecodingKey,
}

impl Verifier<Vec<u8>> for EcVerifier {
    fn verify(&self, msg: &[u8], sig: &Vec<u8>) -> Result<(), signature::Error> {
        let DecodingKeyKind::SecretOrDer(point) = self.key.kind() else {
            return Err(signature::Error::new());
        };
        ring_sig::UnparsedPublicKey::new(self.params, point)
            .verify(msg, sig)
            .map_err(|_| signature::Error::new())
    }
}

impl JwtVerifier for EcVerifier {
    fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A public key and a message it signed (tests/fixtures would hold a private key; this
    /// holds none).
    fn fixture() -> (DecodingKey, Vec<u8>, Vec<u8>) {
        let fixture: serde_json::Value =
            serde_json::from_str(include_str!("ring_verify_fixture.json")).unwrap();
        let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(fixture["jwk"].clone()).unwrap();
        let signature = base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            fixture["signature"].as_str().unwrap(),
        )
        .unwrap();
        let message = fixture["message"].as_str().unwrap().as_bytes().to_vec();
        (DecodingKey::from_jwk(&jwk).unwrap(), message, signature)
    }

    fn verify(alg: Algorithm, key: &DecodingKey, message: &[u8], signature: &[u8]) -> bool {
        (RING_VERIFY_ONLY.verifier_factory)(&alg, key)
            .is_ok_and(|v| v.verify(message, &signature.to_vec()).is_ok())
    }

    #[test]
    fn verifies_an_rs256_signature_made_elsewhere() {
        let (key, message, signature) = fixture();
        assert!(verify(Algorithm::RS256, &key, &message, &signature));
    }

    #[test]
    fn refuses_a_changed_message_or_signature() {
        let (key, mut message, mut signature) = fixture();
        signature[10] ^= 1;
        assert!(!verify(Algorithm::RS256, &key, &message, &signature));
        signature[10] ^= 1;
        message[5] ^= 1;
        assert!(!verify(Algorithm::RS256, &key, &message, &signature));
    }

    #[test]
    fn refuses_other_algorithms_with_the_same_key() {
        let (key, message, signature) = fixture();
        for alg in [Algorithm::RS512, Algorithm::PS256, Algorithm::ES256] {
            assert!(!verify(alg, &key, &message, &signature), "{alg:?}");
        }
    }

    #[test]
    fn never_does_hmac_or_signs() {
        let secret = DecodingKey::from_secret(b"public key bytes").unwrap();
        for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
            assert!((RING_VERIFY_ONLY.verifier_factory)(&alg, &secret).is_err());
        }
        let encoding = EncodingKey::from_secret(b"x").unwrap();
        assert!((RING_VERIFY_ONLY.signer_factory)(&Algorithm::HS256, &encoding).is_err());
    }
}
