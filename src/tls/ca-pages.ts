import type { HttpExchange, HttpResponse } from "../http/exchange.js";
import type { LocalRoute } from "../http/stages/self.js";
import type { OfficeCa } from "./ca.js";

const escapeHtml = (s: string) =>
  s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c] as string);

function response(status: number, type: string, body: Buffer | string, extra: [string, string][] = []): HttpResponse {
  const buf = Buffer.isBuffer(body) ? body : Buffer.from(body);
  return {
    kind: "response",
    status,
    headers: [["content-type", type], ["content-length", String(buf.length)], ["cache-control", "no-store"], ...extra],
    body: buf,
  };
}

/**
 * The office CA at the proxy's own address: /ca (how to install it, and whether this browser
 * trusts it already), /ca.crt (PEM) and /ca.der (DER) to download, and /ca/check, which the page
 * fetches over HTTPS through the proxy: it loads only if the browser trusts the CA.
 */
export function caRoutes(ca: () => OfficeCa | undefined, proxyName: string): LocalRoute[] {
  const missing = () =>
    response(
      404,
      "text/plain; charset=utf-8",
      "There is no office CA yet; the administrator creates it with: npx gatehouse ca init\n",
    );
  return [
    {
      path: "/ca",
      handle: (x) => {
        const c = ca();
        return c ? response(200, "text/html; charset=utf-8", installPage(c, x, proxyName)) : missing();
      },
    },
    {
      path: "/ca.crt",
      handle: () => {
        const c = ca();
        return c
          ? response(200, "application/x-pem-file", c.pem, [["content-disposition", 'attachment; filename="gatehouse-ca.crt"']])
          : missing();
      },
    },
    {
      path: "/ca.der",
      handle: () => {
        const c = ca();
        return c
          ? response(200, "application/x-x509-ca-cert", c.der, [
              ["content-disposition", 'attachment; filename="gatehouse-ca.der"'],
            ])
          : missing();
      },
    },
    {
      path: "/ca/check",
      // Fetched cross-origin (http page, https check); the page only needs to know it loaded.
      handle: () => response(200, "text/plain; charset=utf-8", "trusted\n", [["access-control-allow-origin", "*"]]),
    },
  ];
}

function installPage(ca: OfficeCa, x: HttpExchange, proxyName: string): string {
  const s = ca.summary();
  // The check goes to this very address over HTTPS; only a plain host[:port] goes into the script.
  const given = typeof x.headers.host === "string" ? x.headers.host : "";
  const host = /^[a-z0-9.:[\]-]{1,300}$/i.test(given) ? given : `${x.ctx.local.address}:${x.ctx.local.port}`;
  const steps: [string, string[]][] = [
    [
      "Windows",
      [
        "Download ca.crt, open it, choose Install Certificate.",
        'Choose Local Machine, then "Place all certificates in the following store": Trusted Root Certification Authorities.',
        "Edge and Chrome use it at once; restart Firefox after the Firefox steps below.",
      ],
    ],
    [
      "macOS",
      [
        "Download ca.crt and open it: Keychain Access adds it to the login keychain.",
        'Double-click the certificate there, open Trust, and set "When using this certificate" to Always Trust.',
      ],
    ],
    [
      "Linux (system, Chrome/Chromium)",
      [
        "Debian/Ubuntu: sudo cp gatehouse-ca.crt /usr/local/share/ca-certificates/ && sudo update-ca-certificates",
        'Chrome/Chromium keep their own store (NSS): certutil -d sql:$HOME/.pki/nssdb -A -t "C,," -n gatehouse -i gatehouse-ca.crt',
      ],
    ],
    [
      "Firefox (every system)",
      [
        "Settings, Privacy & Security, Certificates, View Certificates, Authorities, Import: choose ca.crt and tick “trust this CA to identify websites”.",
      ],
    ],
    [
      "Android",
      [
        "Download ca.crt; Settings, Security, Encryption & credentials, Install a certificate, CA certificate.",
        "Apps only trust it if they opt in to user CAs; browsers do.",
      ],
    ],
    [
      "iPhone and iPad",
      [
        "Open this page in Safari and download ca.crt; Settings shows Profile Downloaded: install it.",
        "Then Settings, General, About, Certificate Trust Settings: turn on full trust for it.",
      ],
    ],
  ];
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>${escapeHtml(proxyName)}: install the office certificate</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:44em;margin:2em auto;padding:0 1em;color:#222}
code{background:#f3f3f3;padding:.1em .3em;word-break:break-all}#check{padding:.6em 1em;border-radius:.3em;background:#eee}
#check.ok{background:#dfd}#check.no{background:#fdd}h2{font-size:1.15em;margin-top:1.5em}</style></head><body>
<h1>The office certificate</h1>
<p>${escapeHtml(proxyName)} decrypts some secure (HTTPS) sites to filter and cache them. For that, this
browser must trust the office's certificate authority. Install it once per device:</p>
<p><a href="/ca.crt">Download ca.crt</a> (PEM) · <a href="/ca.der">ca.der</a> (DER, for systems that want it)</p>
<p id="check">Checking whether this browser trusts it…</p>
<p>Subject <code>${escapeHtml(s.subject)}</code><br>SHA-256 fingerprint <code>${escapeHtml(s.sha256)}</code><br>
Valid until ${escapeHtml(s.notAfter.slice(0, 10))}. Compare the fingerprint with the one your administrator gives you.</p>
${steps.map(([name, lines]) => `<h2>${escapeHtml(name)}</h2><ol>${lines.map((l) => `<li>${escapeHtml(l)}</li>`).join("")}</ol>`).join("\n")}
<script>
// Loads only if the browser sends it through the proxy and trusts the office CA.
fetch(${JSON.stringify(`https://${host}/ca/check`)}, { mode: "no-cors", cache: "no-store" }).then(
  () => { const e = document.getElementById("check"); e.className = "ok"; e.textContent = "This browser trusts the office certificate."; },
  () => { const e = document.getElementById("check"); e.className = "no"; e.textContent = "This browser does not trust the office certificate yet (or does not use the proxy): follow the steps below."; },
);
</script>
</body></html>
`;
}
