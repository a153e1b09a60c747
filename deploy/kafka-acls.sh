#!/usr/bin/env bash
# Kafka ACLs for Apache Kafka: who may read and write which Mkutano topic.
#
#   deploy/kafka-acls.sh apply                       # the services' ACLs
#   deploy/kafka-acls.sh subscriber User:tsms tsms   # an e-GA system: public streams only
#   deploy/kafka-acls.sh --dry-run apply             # print the commands, run nothing
#
# The point of it: registration.notices.v1 (contact details, check-in tickets,
# self-service links) may be written by the registration service only, and
# resolutions.notices.v1 (focal persons' names, emails, phones) by the resolutions service
# only; both are read by the notification service's consumer group only; notification.dlq (where a failed notice
# lands) likewise stays with notification and the operators. The public streams
# (registration.v1, resolutions.v1, notification.v1) are read by the services and by the
# subscribers an admin grants, each with its own consumer group.
#
# Needs a broker with an authorizer (KRaft: authorizer.class.name=
# org.apache.kafka.metadata.authorizer.StandardAuthorizer) and authenticated principals
# (mTLS or SASL), and allow.everyone.if.no.acl.found=false (the default): what no ACL
# allows is refused. Do not list the services among super.users. The operators' admin
# principal (topics Job, `mkutano topics create`, `python -m deploy.dlq replay`) is a
# super user or holds Create/Alter/AlterConfigs/Describe on the cluster and topics.
#
# The embedded broker of `make run` and the tests (tansu) has no ACLs at all: there,
# every client reads every topic. Isolation is a property of the Apache Kafka deployment.
#
# Environment (defaults in brackets):
#   KAFKA_BOOTSTRAP_SERVERS [kafka:9092]    KAFKA_ACLS_BIN [kafka-acls.sh]
#   KAFKA_ADMIN_CONFIG      (a client properties file for the admin connection, optional)
#   REGISTRATION_PRINCIPAL [User:mkutano-registration]
#   NOTIFICATION_PRINCIPAL [User:mkutano-notification]   NOTIFICATION_GROUP [notification]
#   RESOLUTIONS_PRINCIPAL  [User:mkutano-resolutions]
#   WEBHOOKS_PRINCIPAL     [User:mkutano-webhooks]       WEBHOOKS_GROUP [webhooks]
#   PAYMENTS_PRINCIPAL     [User:mkutano-payments]       PAYMENTS_GROUP [payments]
#
# Payments (issue 14): payments.notices.v1 (payers' names, emails, phones, control
# numbers) is written by the payments service only and read by notification's group only;
# the payments group also reads registration.notices.v1 (a GePG bill needs the payer's
# name, phone and email) and registration.v1 (PersonalDataErased).
set -euo pipefail

BOOTSTRAP="${KAFKA_BOOTSTRAP_SERVERS:-kafka:9092}"
BIN="${KAFKA_ACLS_BIN:-kafka-acls.sh}"
REGISTRATION="${REGISTRATION_PRINCIPAL:-User:mkutano-registration}"
NOTIFICATION="${NOTIFICATION_PRINCIPAL:-User:mkutano-notification}"
NOTIFICATION_GROUP="${NOTIFICATION_GROUP:-notification}"
RESOLUTIONS="${RESOLUTIONS_PRINCIPAL:-User:mkutano-resolutions}"
WEBHOOKS="${WEBHOOKS_PRINCIPAL:-User:mkutano-webhooks}"
WEBHOOKS_GROUP="${WEBHOOKS_GROUP:-webhooks}"
PAYMENTS="${PAYMENTS_PRINCIPAL:-User:mkutano-payments}"
PAYMENTS_GROUP="${PAYMENTS_GROUP:-payments}"

# Topic names: shared/topics.py.
PUBLIC_TOPICS=(registration.v1 resolutions.v1 notification.v1 payments.v1)
REGISTRATION_NOTICES=registration.notices.v1
RESOLUTIONS_NOTICES=resolutions.notices.v1
PAYMENTS_NOTICES=payments.notices.v1

DRY_RUN=0

acl() {
  # acl <principal> <operation...> -- <resource options...>
  local principal="$1"; shift
  local ops=()
  while [[ "$1" != "--" ]]; do ops+=(--operation "$1"); shift; done
  shift
  local cmd=("$BIN" --bootstrap-server "$BOOTSTRAP")
  if [[ -n "${KAFKA_ADMIN_CONFIG:-}" ]]; then cmd+=(--command-config "$KAFKA_ADMIN_CONFIG"); fi
  cmd+=(--add --force --allow-principal "$principal" "${ops[@]}" "$@")
  if [[ "$DRY_RUN" == 1 ]]; then
    printf '%s\n' "${cmd[*]}"
  else
    "${cmd[@]}"
  fi
}

producer() {
  # producer <principal> <topic...>: write the topics; idempotent producer on the cluster.
  local principal="$1"; shift
  for topic in "$@"; do acl "$principal" Write Describe -- --topic "$topic"; done
  acl "$principal" IdempotentWrite -- --cluster
}

consumer() {
  # consumer <principal> <group> <topic...>: read the topics in this one consumer group.
  local principal="$1" group="$2"; shift 2
  for topic in "$@"; do acl "$principal" Read Describe -- --topic "$topic"; done
  acl "$principal" Read Describe -- --group "$group"
}

services() {
  # registration: its public stream, the private notices (the only writer), its DLQ.
  producer "$REGISTRATION" registration.v1 "$REGISTRATION_NOTICES" registration.dlq
  # notification: the only reader of the notices, with its group; the public streams it
  # acts on; its own stream; its DLQ (which may hold a failed notice: nobody else reads it).
  consumer "$NOTIFICATION" "$NOTIFICATION_GROUP" "$REGISTRATION_NOTICES" "$RESOLUTIONS_NOTICES" \
    registration.v1 resolutions.v1
  consumer "$NOTIFICATION" "$NOTIFICATION_GROUP" "$PAYMENTS_NOTICES"
  producer "$NOTIFICATION" notification.v1 notification.dlq
  # resolutions: its public stream, the private notices (the only writer), its DLQ.
  producer "$RESOLUTIONS" resolutions.v1 "$RESOLUTIONS_NOTICES" resolutions.dlq
  # webhooks: a subscriber of the public streams, like any e-GA system; its DLQ.
  consumer "$WEBHOOKS" "$WEBHOOKS_GROUP" "${PUBLIC_TOPICS[@]}"
  producer "$WEBHOOKS" webhooks.dlq
  # payments: its public stream, the payers' notices (the only writer), its DLQ; it reads
  # the registration notices (the payer's contact for the GePG bill) in its own group.
  producer "$PAYMENTS" payments.v1 "$PAYMENTS_NOTICES" payments.dlq
  consumer "$PAYMENTS" "$PAYMENTS_GROUP" "$REGISTRATION_NOTICES" registration.v1
  # registration reads payments.v1 (paid: confirmed; expired: cancelled, seat released).
  consumer "$REGISTRATION" registration "payments.v1"
}

subscriber() {
  # An e-GA system: the public streams, in its own consumer group. Never the notices.
  local principal="$1" group="$2"
  consumer "$principal" "$group" "${PUBLIC_TOPICS[@]}"
}

usage() {
  sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'
}

if [[ "${1:-}" == "--dry-run" ]]; then DRY_RUN=1; shift; fi
case "${1:-}" in
  apply) services ;;
  subscriber)
    [[ $# -eq 3 ]] || { usage >&2; exit 2; }
    subscriber "$2" "$3"
    ;;
  -h|--help|help) usage ;;
  *) usage >&2; exit 2 ;;
esac
