-- Every session records its order's tenant: Verify and ResendCode of a public caller compare only
-- with its tenant's challenges, and GetVerificationStatus answers only the owner. Sessions from
-- before tenants (and requests naming none) belong to the development tenant.
ALTER TABLE sessions ADD COLUMN tenant text NOT NULL DEFAULT 'dev';
