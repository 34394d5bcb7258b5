-- Orders the messages of one (order, phone, template): only a higher sequence supersedes.
ALTER TABLE messages ADD COLUMN sequence integer NOT NULL DEFAULT 0;
