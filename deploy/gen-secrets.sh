#!/bin/sh
# gen-secrets.sh DIR: makes every secret the manifests name, real ones, into DIR (created, mode 0700):
#   <svc>-token        each service's own internal token (its identity when it calls a peer)
#   operator-token     a token for icpctl's internal calls (role operator)
#   reviewer-token     a token for the review console's RecordReviewOutcome (role reviewer)
#   internal-callers   identity:sha256-hex-of-token of all of the above: every service's --internal-callers-file
#   api-keys           key_id:sha256-hex-of-key of one portal key; the key itself in portal-key (give it to the portal)
#   hmac.env           HMAC_KEYS of verification
#   verification-seal.env  SEAL_KEYS of verification (its queued SendMessage calls)
#   sms-dispatch-seal.env  SEAL_KEYS of sms-dispatch (its queued texts)
#   sms-gateway.env    WEBHOOK_TOKEN of sms-dispatch (replace it with the one your gateway issued)
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
printf 'HMAC_KEYS=k1:%s\n' "$(rand)" > "$dir/hmac.env"
printf 'SEAL_KEYS=s1:%s\n' "$(rand)" > "$dir/verification-seal.env"
printf 'SEAL_KEYS=s1:%s\n' "$(rand)" > "$dir/sms-dispatch-seal.env"
printf 'WEBHOOK_TOKEN=%s\n' "$(rand)" > "$dir/sms-gateway.env"
echo "secrets written to $dir"
