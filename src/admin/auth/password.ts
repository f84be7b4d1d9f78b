import { randomBytes, scrypt, timingSafeEqual } from "node:crypto";

// admin.password holds a PHC-style scrypt string, never the password:
//   $scrypt$ln=15,r=8,p=1$<salt, base64>$<hash, base64>
// N = 2^15, r = 8 costs 32 MiB and about 0.1 s per check on a small office box: cheap for one login,
// expensive for a guesser (and the login rate limit bounds how often anyone can make us pay it).

const DEFAULTS = { ln: 15, r: 8, p: 1 };
const KEY_BYTES = 32;
const PHC = /^\$scrypt\$ln=(\d{1,2}),r=(\d{1,2}),p=(\d)\$([A-Za-z0-9+/]{16,}={0,2})\$([A-Za-z0-9+/]{43}=?)$/;

interface Parsed {
  ln: number;
  r: number;
  p: number;
  salt: Buffer;
  hash: Buffer;
}

function parse(text: string): Parsed | undefined {
  const m = PHC.exec(text);
  if (!m) return undefined;
  const [ln, r, p] = [Number(m[1]), Number(m[2]), Number(m[3])];
  // Bounds keep a hand-edited hash from costing gigabytes per login.
  if (ln < 10 || ln > 20 || r < 1 || r > 32 || p < 1 || p > 4) return undefined;
  return { ln, r, p, salt: Buffer.from(m[4] as string, "base64"), hash: Buffer.from(m[5] as string, "base64") };
}

/** True for a string `gatehouse passwd` could have printed. */
export function isPasswordHash(text: string): boolean {
  return parse(text) !== undefined;
}

function derive(password: string, salt: Buffer, o: { ln: number; r: number; p: number }): Promise<Buffer> {
  const N = 2 ** o.ln;
  return new Promise((resolve, reject) =>
    scrypt(password.normalize("NFC"), salt, KEY_BYTES, { N, r: o.r, p: o.p, maxmem: 256 * N * o.r }, (err, key) =>
      err ? reject(err) : resolve(key),
    ),
  );
}

/** The line for admin.password. */
export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await derive(password, salt, DEFAULTS);
  return `$scrypt$ln=${DEFAULTS.ln},r=${DEFAULTS.r},p=${DEFAULTS.p}$${salt.toString("base64")}$${key.toString("base64")}`;
}

/** Checks a password against a stored hash in constant time; false for a malformed hash. */
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const parsed = parse(stored);
  if (!parsed) return false;
  const key = await derive(password, parsed.salt, parsed);
  return key.length === parsed.hash.length && timingSafeEqual(key, parsed.hash);
}
