#!/bin/sh
# gen-secrets.sh DIR: makes every secret the manifests name, real ones, into DIR (created, mode 0700):
#   <svc>-token        each service's own internal token (its identity when it calls a peer)
#   operator-token     a token for icpctl's internal calls (role operator)
#   reviewer-token     a token for the review console's RecordReviewOutcome (role reviewer)
#   internal-callers   identity:sha256-hex-of-token of all of the above: every service's --internal-callers-file
#   api-keys           key_id:sha256-hex-of-key of one portal key; the key itself in portal-key (give it to the portal),
#                      and edge-portal:sha256:cross-tenant, the authority's cross-tenant key the edge's page sends
#   edge-api-key       that cross-tenant key itself: the edge's --page-api-key-file
#   edge-page-secret   the key of the page's CSRF tokens and captchas, shared by every edge replica
#   hmac.env           HMAC_KEYS of verification
#   verification-seal.env  SEAL_KEYS of verification (its queued SendMessage calls)
#   sms-dispatch-seal.env  SEAL_KEYS of sms-dispatch (its queued texts)
#   sms-gateway.env    WEBHOOK_TOKEN of sms-dispatch (replace it with the one your gateway issued)
#   ca.crt             the CA every service checks its peers' certificates with (--peer-tls-ca-file);
#                      its key ca.key is for you to keep (it signs new certificates), never a Secret
#   <svc>-tls.crt/.key each service's certificate for its gRPC listeners (--tls-cert-file/--tls-key-file),
#                      for the names peers and portals dial: <svc>, <svc>.$NAMESPACE.svc(.cluster.local),
#                      localhost and 127.0.0.1 (NAMESPACE defaults to icpverify, the example overlay's)
# Then point the kustomization's secretGenerator (or compose's secrets) at these files instead of the
# *.example ones, which the services refuse to start with (placeholders). Needs openssl and sha256sum.
set -eu
dir=${1:?usage: gen-secrets.sh DIR}
umask 077
mkdir -p "$dir"
rand() { openssl rand -hex 32; }
hash() { printf %s "$1" | sha256sum | cut -d' ' -f1; }
: > "$dir/internal-callers"
for who in filing verification sms-dispatch deadline operator reviewer; do
  token=$(rand)
  printf '%s\n' "$token" > "$dir/$who-token"
  printf '%s:%s\n' "$who" "$(hash "$token")" >> "$dir/internal-callers"
done
key=$(rand)
printf '%s\n' "$key" > "$dir/portal-key"
printf 'portal-1:%s\n' "$(hash "$key")" > "$dir/api-keys"
key=$(rand)
printf '%s\n' "$key" > "$dir/edge-api-key"
printf 'edge-portal:%s:cross-tenant\n' "$(hash "$key")" >> "$dir/api-keys"
printf '%s\n' "$(rand)" > "$dir/edge-page-secret"
printf 'HMAC_KEYS=k1:%s\n' "$(rand)" > "$dir/hmac.env"
printf 'SEAL_KEYS=s1:%s\n' "$(rand)" > "$dir/verification-seal.env"
printf 'SEAL_KEYS=s1:%s\n' "$(rand)" > "$dir/sms-dispatch-seal.env"
printf 'WEBHOOK_TOKEN=%s\n' "$(rand)" > "$dir/sms-gateway.env"
ns=${NAMESPACE:-icpverify}
ec="-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
openssl req -x509 $ec -keyout "$dir/ca.key" -out "$dir/ca.crt" -days 825 -subj "/CN=icpverify internal CA" 2>/dev/null
for svc in filing verification sms-dispatch deadline; do
  printf 'subjectAltName=DNS:%s,DNS:%s.%s.svc,DNS:%s.%s.svc.cluster.local,DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n' \
    "$svc" "$svc" "$ns" "$svc" "$ns" > "$dir/.$svc.ext"
  openssl req $ec -keyout "$dir/$svc-tls.key" -out "$dir/.$svc.csr" -subj "/CN=$svc" 2>/dev/null
  openssl x509 -req -in "$dir/.$svc.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial -days 397 \
    -extfile "$dir/.$svc.ext" -out "$dir/$svc-tls.crt" 2>/dev/null
  rm -f "$dir/.$svc.ext" "$dir/.$svc.csr"
done
rm -f "$dir/ca.srl"
echo "secrets written to $dir"
