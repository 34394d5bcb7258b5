package provider

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// The request signatures of the two clouds, written once and used both ways: the providers sign
// with them, and the fakes (providertest) verify a request by computing them again from what
// arrived. Each is checked against its documented worked example (sign_test.go).

func sha256Hex(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func hmacSHA256(key []byte, msg string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

// ACS3Algorithm is Alibaba Cloud's V3 signature algorithm.
const ACS3Algorithm = "ACS3-HMAC-SHA256"

// ACS3Encode percent-encodes s as the V3 signature wants (RFC 3986): letters, digits and -_.~ stay,
// every other byte becomes %XX (space %20, * %2A).
func ACS3Encode(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte("0123456789ABCDEF"[c>>4])
		b.WriteByte("0123456789ABCDEF"[c&15])
	}
	return b.String()
}

// ACS3Query is the canonical query string of q: names sorted (then values), each name and value
// ACS3Encoded, joined name=value with &. It is also the query the provider sends.
func ACS3Query(q url.Values) string {
	names := make([]string, 0, len(q))
	for k := range q {
		names = append(names, k)
	}
	sort.Strings(names)
	var parts []string
	for _, k := range names {
		vs := append([]string(nil), q[k]...)
		sort.Strings(vs)
		for _, v := range vs {
			parts = append(parts, ACS3Encode(k)+"="+ACS3Encode(v))
		}
	}
	return strings.Join(parts, "&")
}

// ACS3CanonicalRequest builds the V3 canonical request of an RPC-style call (canonical URI "/"):
// headers are the signed ones, lower-case name to value, and payloadHash the hex SHA-256 of the
// body (the x-acs-content-sha256 header). It returns the request and its SignedHeaders.
func ACS3CanonicalRequest(method string, query url.Values, headers map[string]string, payloadHash string) (string, string) {
	names := make([]string, 0, len(headers))
	for k := range headers {
		names = append(names, strings.ToLower(k))
	}
	sort.Strings(names)
	lower := make(map[string]string, len(headers))
	for k, v := range headers {
		lower[strings.ToLower(k)] = strings.TrimSpace(v)
	}
	var ch strings.Builder
	for _, k := range names {
		ch.WriteString(k + ":" + lower[k] + "\n")
	}
	signed := strings.Join(names, ";")
	return strings.Join([]string{method, "/", ACS3Query(query), ch.String(), signed, payloadHash}, "\n"), signed
}

// ACS3Signature is the hex HMAC-SHA256, under the AccessKey secret, of the string to sign
// "ACS3-HMAC-SHA256\n" + hex(SHA-256(canonical request)).
func ACS3Signature(secret, canonicalRequest string) string {
	return hex.EncodeToString(hmacSHA256([]byte(secret), ACS3Algorithm+"\n"+sha256Hex([]byte(canonicalRequest))))
}

// ACS3Authorization is the Authorization header value.
func ACS3Authorization(accessKeyID, signedHeaders, signature string) string {
	return ACS3Algorithm + " Credential=" + accessKeyID + ",SignedHeaders=" + signedHeaders + ",Signature=" + signature
}

// ACS3Date is the x-acs-date of an instant: UTC, 2006-01-02T15:04:05Z.
func ACS3Date(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05Z") }

// TC3Algorithm is Tencent Cloud's API 3.0 signature algorithm (signature v3).
const TC3Algorithm = "TC3-HMAC-SHA256"

// TC3CanonicalRequest builds the canonical request of a POST to "/" with no query: headers are the
// signed ones (name and value lower-cased and trimmed, as the documentation says), payload the body.
// It returns the request and its SignedHeaders.
func TC3CanonicalRequest(headers map[string]string, payload []byte) (string, string) {
	lower := make(map[string]string, len(headers))
	names := make([]string, 0, len(headers))
	for k, v := range headers {
		k = strings.ToLower(strings.TrimSpace(k))
		lower[k] = strings.ToLower(strings.TrimSpace(v))
		names = append(names, k)
	}
	sort.Strings(names)
	var ch strings.Builder
	for _, k := range names {
		ch.WriteString(k + ":" + lower[k] + "\n")
	}
	signed := strings.Join(names, ";")
	return strings.Join([]string{"POST", "/", "", ch.String(), signed, sha256Hex(payload)}, "\n"), signed
}

// TC3CredentialScope is "<UTC date of timestamp>/<service>/tc3_request".
func TC3CredentialScope(service string, timestamp int64) string {
	return time.Unix(timestamp, 0).UTC().Format("2006-01-02") + "/" + service + "/tc3_request"
}

// TC3Signature signs a canonical request: the key is derived from "TC3"+secretKey through the
// date, the service and "tc3_request"; the string to sign is the algorithm, the timestamp, the
// credential scope and hex(SHA-256(canonical request)), one per line.
func TC3Signature(secretKey, service string, timestamp int64, canonicalRequest string) string {
	scope := TC3CredentialScope(service, timestamp)
	date := scope[:len("2006-01-02")]
	sts := TC3Algorithm + "\n" + strconv.FormatInt(timestamp, 10) + "\n" + scope + "\n" + sha256Hex([]byte(canonicalRequest))
	key := hmacSHA256(hmacSHA256(hmacSHA256([]byte("TC3"+secretKey), date), service), "tc3_request")
	return hex.EncodeToString(hmacSHA256(key, sts))
}

// TC3Authorization is the Authorization header value.
func TC3Authorization(secretID, service string, timestamp int64, signedHeaders, signature string) string {
	return TC3Algorithm + " Credential=" + secretID + "/" + TC3CredentialScope(service, timestamp) +
		", SignedHeaders=" + signedHeaders + ", Signature=" + signature
}
