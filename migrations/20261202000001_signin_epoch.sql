-- `migctl user unlock NAME` bumps it: a running console forgets the name's
-- failed sign-ins (kept in its memory) at the name's next attempt.
ALTER TABLE users ADD COLUMN signin_epoch INTEGER NOT NULL DEFAULT 0;
