-- Platform administrators: the operators of an install. They use the admin
-- console and its API (nodes, cache purges, broker, configuration) and
-- manage every organization: create them, invite their first admin, set
-- their quotas. An organization's admin (users.role) manages only their
-- organization. The first user of a fresh install is one; before this
-- migration the default organization's admins ran the console, so they
-- stay able to.
ALTER TABLE users ADD COLUMN platform_admin boolean NOT NULL DEFAULT false;
UPDATE users SET platform_admin = true WHERE role = 'admin' AND org_id = 'default';
