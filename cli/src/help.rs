//! What each subcommand's `--help` shows after its options: examples first (a person's first
//! question is "how do I call it"), then its exit statuses where they say more than `convoy --help`.

pub const SUBMIT: &str = "\
Examples:
  convoy submit release.json
  convoy submit imagedefinitions.json --service laravel-app --release 4cf03d1
  jq -n '{version: 1, ...}' | convoy submit - --json";

pub const WAIT: &str = "\
Examples:
  convoy wait laravel-app 4cf03d1
  convoy wait laravel-app 4cf03d1 --until awaiting-approval --timeout 1h

Exit status: 0 reached (Succeeded, or awaiting approval when asked), 1 Failed/RolledBack/Superseded,
2 error, 3 timed out.";

pub const LIST: &str = "\
Examples:
  convoy list
  convoy list laravel-app --active
  convoy list --json
  convoy list --live --cluster prod
  convoy list --live --json | jq '.[] | select(.changed_outside_convoy)'";

pub const HISTORY: &str = "\
Examples:
  convoy history laravel-app
  convoy history laravel-app --limit 5
  convoy history laravel-app --json | jq '.releases[0].images'";

pub const ROLLBACK: &str = "\
Examples:
  convoy rollback laravel-app
  convoy rollback laravel-app --to 4cf03d1 --json
  convoy rollback laravel-app --migrate-down

Submits releases/<service>/rollback-<to>-<unix seconds>.json: the images of the release returned
to, pinned by digest (tags may have moved since), and \"rollback\": {of, to, migrate_down}. The
manifest-uploaded function confirms the claim from Convoy's records, or fails the release at the
manifest stage. A service's part of a group release rolls back the whole group release (a version 2
manifest, releases/<group>/...). No migration runs unless --migrate-down (the reverted release's
recorded migration.down, from its own image; for a group release, its one migration's down
command, once, from the task definition of the service that migration named, before any service
moves). Follow it with convoy wait. When that name is taken
already (the same rollback, the same second), nothing is written and it says \"submitted already\".

Exit status: 0 submitted (or submitted already), 1 refused (nothing live, nothing before it, --to never went live),
2 error.";

pub const LOGS: &str = "\
Examples:
  convoy logs laravel-app 4cf03d1
  convoy logs laravel-app 4cf03d1 --json

Exit status: 0 printed, 1 the release has no migration log (none ran, or it never started),
2 error, 4 no such release.";

pub const STATUS: &str = "\
Examples:
  convoy status laravel-app 4cf03d1
  convoy status laravel-app 4cf03d1 --json | jq .state

Exit status: 0 in progress or succeeded, 1 failed, rolled back or superseded, 2 error,
4 no such release.";

pub const APPROVE: &str = "\
Examples:
  convoy approve laravel-app 4cf03d1
  convoy approve laravel-app 4cf03d1 --wait 0 --json
  convoy approve laravel 4cf03d1   (a release of several services: approves the release; each
                                   service that takes traffic shifts once verified)";

pub const REJECT: &str = "\
Examples:
  convoy reject laravel-app 4cf03d1
  convoy reject laravel-app 4cf03d1 --wait 60";

pub const CHECK: &str = "\
Examples:
  convoy check --settings settings.json --offline
  convoy check --settings settings.json --cluster production
  convoy check
  (the last with the functions' CONVOY_* environment: CONVOY_SETTINGS_VERSION or
  CONVOY_SERVICE_SETTINGS, CONVOY_CLUSTER, CONVOY_STATE_BUCKET, ...)

Exit status: 0 the settings are valid and every service is ready, 1 a problem in the file or a
service not ready (each on stderr, naming the service or release group), 2 error (the file
unreadable, AWS unreachable).";

pub const SETTINGS: &str = "\
Examples:
  convoy settings publish settings.json
  convoy settings schema > settings.schema.json";

pub const SETTINGS_PUBLISH: &str = "\
Examples:
  convoy settings publish settings.json
  convoy settings publish settings.json --json | jq -r .version_id
  (with CONVOY_STATE_BUCKET, and credentials of a principal in the stack's SettingsPublisherArns)

Exit status: 0 published (the version is printed), 1 the file is refused (nothing written),
2 error (S3 refused the write or is unreachable).";

pub const SETTINGS_SCHEMA: &str = "\
Examples:
  convoy settings schema > settings.schema.json
  (then \"$schema\": \"./settings.schema.json\" in the settings file)";

pub const DASHBOARD: &str = "\
Examples:
  convoy dashboard
  convoy dashboard --port 0 --cluster production

The Services page rolls a service back (behind a confirmation, with the same code as
convoy rollback and these AWS credentials); a release awaiting approval is approved or rejected
from its page.";

pub const INIT: &str = "\
Examples:
  convoy init production laravel-app
  convoy init production laravel-app --out settings/laravel-app.json
  convoy init production laravel-app --verify-function convoy-verify --test-listener-host test.internal.example

Exit status: 0 settings written and nothing missing, 1 something is missing (said on stderr;
the settings are written unless the service has no test listener), 2 error (AWS unreachable,
no such service, --out exists without --force).";
