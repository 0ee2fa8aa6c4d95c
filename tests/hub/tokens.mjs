// Signed JWTs for the hub's AUTH_MODE=jwt, shared by the auth tests and the hostile corpus.
// Keys are generated here with node:crypto (RSA, EC P-256, and an HS256 secret); the hub
// verifies what is signed here with WebCrypto.
import { generateKeyPairSync, sign as cryptoSign, createHmac } from 'node:crypto';

export const ISSUER = 'https://ehr.example';
export const AUDIENCE = 'https://hub.example/api/hub';
export const SECRET = 'a shared HS256 secret of at least thirty-two bytes';
export const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
export const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
export const otherRsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
export const otherEc = generateKeyPairSync('ec', { namedCurve: 'P-256' });
export const JWKS = {
  keys: [
    { ...rsa.publicKey.export({ format: 'jwk' }), kid: 'rsa-1', use: 'sig', alg: 'RS256' },
    { ...ec.publicKey.export({ format: 'jwk' }), kid: 'ec-1', use: 'sig', alg: 'ES256' },
  ],
};

export const now = () => Math.floor(Date.now() / 1000);
export const b64 = (v) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

/**
 * A compact JWS. Claims default to a valid token for every FHIRcast event (`undefined` drops
 * a claim); `alg` RS256 | ES256 | HS256 | none, `kid` defaults to the alg's key, `key` to the
 * configured one.
 */
export function jwt(claims = {}, { alg = 'RS256', kid = { RS256: 'rsa-1', ES256: 'ec-1' }[alg], key, header = {} } = {}) {
  const body = { iss: ISSUER, aud: AUDIENCE, iat: now(), exp: now() + 300, sub: 'user-1', scope: 'openid fhircast/*.read fhircast/*.write', ...claims };
  for (const k of Object.keys(body)) if (body[k] === undefined) delete body[k];
  const input = `${b64({ alg, typ: 'JWT', ...(kid ? { kid } : {}), ...header })}.${b64(body)}`;
  const data = Buffer.from(input);
  let sig;
  if (alg === 'RS256') sig = cryptoSign('sha256', data, key ?? rsa.privateKey);
  else if (alg === 'ES256') sig = cryptoSign('sha256', data, { key: key ?? ec.privateKey, dsaEncoding: 'ieee-p1363' });
  else if (alg === 'HS256') sig = createHmac('sha256', key ?? SECRET).update(input).digest();
  else sig = Buffer.alloc(0);
  return `${input}.${sig.toString('base64url')}`;
}

/** Bindings for a hub that verifies these tokens (inline public keys and the HS256 secret). */
export const JWT_BINDINGS = { AUTH_MODE: 'jwt', JWT_ISSUER: ISSUER, JWT_AUDIENCE: AUDIENCE, JWT_PUBLIC_KEYS: JSON.stringify(JWKS), JWT_HS256_SECRET: SECRET };
