# ManCard's rider-facing text, English. Every message id is a stable code (the validator's
# refusal reasons, the wallet's states and history statuses, the backend's reason codes); the
# Rust core formats numbers, amounts and dates for the language and passes them in as
# arguments. fa.ftl is the default language; every id here has a message in fa.ftl and
# azb.ftl (tested).

## Amounts. $toman and $rials arrive formatted (digits and grouping of the language).
amount = { $toman } toman ({ $rials } rials)
validator-amount = { $rials } rials ({ $toman } toman)

## The validator's display.
validator-accepted = OK - { $fare } ({ $kind })
validator-accepted-free = OK - free ride ({ $kind })
validator-refused = REFUSED: { $reason }
fare-kind-full = full fare
fare-kind-transfer = transfer
fare-kind-capped = daily cap reached

## Why a validator refused a ride (the validator's refusal codes).
refusal-not_configured = Validator not ready (no configuration) - please use another door
refusal-line_not_in_tariff = Validator misconfigured (line { $line } has no fare)
refusal-no_credential = No ManCard on this phone - open the app to get one
refusal-not_a_mancard = Not a ManCard - hold your ManCard phone to the reader
refusal-wallet_locked = ManCard is locked - unlock your phone and tap again
refusal-expired = Card expired - open the app online to renew
refusal-not_yet_valid = Card not yet valid - check your phone's date
refusal-credential_not_valid = Card not valid now - open the app online to renew
refusal-blocked = Card blocked - contact ManCard support
refusal-already_used = Already used - this ride was already paid
refusal-insufficient_allowance = Insufficient offline balance for { $fare } - top up or go online
refusal-counters_exhausted = Offline rides used up - open the app online
refusal-counter_out_of_range = Card data invalid (counter) - open the app online
refusal-phone_clock_off = QR code expired or phone clock is off - show a new code
refusal-unknown_issuer = Card not recognised (unknown issuer)
refusal-issuer_key_not_valid = Card not recognised (issuer key not valid)
refusal-bad_signature = Card not recognised (bad signature)
refusal-amount_mismatch = Fare not confirmed by the phone - tap again
refusal-challenge_mismatch = Answer not valid for this tap - tap again
refusal-phone_storage_failure = Phone could not save the ride - tap again
refusal-card_error = Card error { $sw } ({ $sw_text }) - tap again
refusal-malformed = Unreadable answer from the phone - tap again
refusal-communication = Tap too short - hold the phone still and tap again
refusal-not_a_pass = Not a ManCard QR code
refusal-journal_failure = Validator out of order - please use another door
refusal-internal = Validator error - please tap again
refusal-no_validator_certificate = Validator not ready (no validator certificate installed) - please use another door
refusal-validator_blocked = This validator is blocked - please use another door
refusal-validator_certificate_not_valid = Validator certificate expired or validator clock wrong - please use another door
refusal-validator_line_not_allowed = Validator not allowed on line { $line } - please use another door
refusal-non_canonical_signature = Card not recognised (modified signature) - show a new code or tap your phone
refusal-pass_too_long = QR code valid for too long (at most { $max } s allowed) - show a new code
refusal-fare_class_mismatch = Fare class not confirmed by the phone - tap again
refusal-reader_certificate_required = Phone needs the validator's certificate - tap again
refusal-reader_unknown = Phone does not trust this validator - open the app online, or use another door
refusal-reader_expired = Phone says this validator's certificate expired - please use another door
refusal-reader_denied = Phone says this validator is blocked - please use another door
refusal-bad_challenge_signature = Phone refused the validator's signature - please use another door
refusal-reader_clock_off = Phone and validator clocks disagree - check your phone's date and time
refusal-fare_too_high = Phone refused: fare higher than the tariff allows - please use another door
refusal-too_many_taps = Too many taps this minute - wait a minute and tap again
refusal-reader_line_not_allowed = Phone says this validator may not charge on this line - use another door
refusal-stale_challenge = Tap interrupted (old challenge) - tap again
refusal-phone_not_ready = Phone app starting - wait a moment and tap again

## Status words a card can answer (the validator's "card error", the phone's refusals).
sw-ok = success
sw-wrong_length = wrong length
sw-incorrect_data = incorrect data
sw-app_not_found = application not found
sw-wrong_p1p2 = incorrect P1/P2
sw-wallet_locked = wallet locked
sw-conditions_not_satisfied = command out of order
sw-no_credential = no ticket on this phone
sw-credential_not_valid = ticket not valid at this time
sw-counters_exhausted = offline rides used up
sw-allowance_exhausted = offline allowance too low for this fare
sw-storage_failure = phone could not record the tap
sw-ins_not_supported = instruction not supported
sw-cla_not_supported = class not supported
sw-internal = internal error
sw-reader_certificate_required = phone needs the reader's certificate
sw-reader_unknown = this phone does not trust the reader
sw-reader_expired = the reader's certificate has expired
sw-reader_denied = the reader is blocked
sw-bad_challenge_signature = the reader's signature is wrong
sw-reader_clock_off = the reader's clock is wrong
sw-fare_too_high = fare higher than any fare of the tariff
sw-too_many_taps = too many taps this minute
sw-reader_line_not_allowed = the reader may not charge on this line
sw-stale_challenge = challenge from another session
sw-not_ready = wallet not open yet
sw-other = unknown status

## The wallet's state (the app's badge).
state-no_credential = No card yet
state-active = Active
state-replenish_due = Active, renewal due
state-not_yet_valid = Not valid yet
state-expired = Expired
state-revoked = Revoked
state-exhausted = Offline rides used up
state-key_unavailable = Needs a new card

## The wallet's status line and its problem.
status-no-ticket = No ticket on this phone yet
status-usable = { $rides ->
    [one] { $rides_text } ride
   *[other] { $rides_text } rides
} / { $amount } available offline until { $until }
status-not-usable = Ticket not usable: { $problem }
problem-not_yet_valid = not valid yet
problem-expired = expired
problem-exhausted = offline rides used up
problem-moved = this card was moved to another phone
problem-revoked = revoked: { $why }
problem-key_unavailable = the card's key cannot be used on this phone; sign in again to get a new card
revoked-refusal = the ticket has been revoked: { $why }

## Why a ticket was revoked (the backend's revocation codes).
revocation-none = no reason given
revocation-shared_pass = { $reason }, more often than allowed in a day
revocation-fraud = a fraud case was opened ({ $reason }); the account is frozen until it is resolved

## The backend's reason codes for a charge, a correction or a refusal.
reason-none = no reason given
reason-torn_gate_closed = the gate did not open
reason-pass_not_scanned = the pass was never scanned
reason-pass_expired_unscanned = the pass expired without being scanned
reason-shared_pass = the same pass was shown on more than one bus
reason-from_the_future = dated in the future
reason-over_allowance = more than the offline allowance
reason-duplicate_counter = a counter used twice
reason-counter_out_of_range = a counter outside the card's range
reason-broken_chain = the phone's ride log was altered
reason-transfer = a transfer
reason-daily_cap = the daily cap
reason-rerated = re-rated
reason-replaced_by_new_device = this card was moved to another phone

## A history row's status (the wallet's history status codes).
history-not_settled = not settled yet
history-pass_shown = pass shown
history-pass_not_used = not used
history-charged = charged { $amount }
history-corrected = charged { $amount } instead of { $authorized }: { $why }
history-not_charged = not charged: { $why }
history-rejected = not charged, the report was refused: { $why }
history-fraud = charged { $amount }, fraud case opened: { $why }
history-refused = refused
history-credited = credited { $amount }
detail-recovered = recovered from the backend
detail-phone-refused = the phone refused: { $why }
detail-top_up = top-up { $reference }
detail-adjustment = adjustment: { $note }
