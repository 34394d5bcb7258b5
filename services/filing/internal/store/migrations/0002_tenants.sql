-- Every order belongs to the tenant (hosting provider, 接入商) whose portal created it: the API key id
-- or the JWT's tenant claim. Orders filed before tenants existed belong to the development tenant.
ALTER TABLE orders ADD COLUMN tenant text NOT NULL DEFAULT 'dev';
ALTER TABLE orders ALTER COLUMN tenant DROP DEFAULT;
-- A tenant's listing, newest first (ListOrders with a tenant).
CREATE INDEX orders_tenant_newest ON orders (tenant, created_at DESC, order_id DESC);
