/*
 * ManCard settlement v2 (issue #13) in Promela: riders' phones (wallets), validators, the
 * backend, and a network that loses, duplicates and reorders every message; each party may
 * crash at any step (durable state survives, volatile state does not) and NFC taps may tear.
 * What is modelled, what is abstracted, the figures: model/README.md.
 *
 * Run: scripts/model-check.sh (the model must pass; each broken variant must fail). By hand:
 *   spin -DWRITE_AHEAD -DSTRICT_GATE -a settlement.pml && gcc -O2 -DSAFETY -o pan pan.c &&
 *   ./pan -m10000
 *
 * Switches:
 *   -DNT=n                 n tap attempts in all, by either rider at either validator (default 3)
 *   -DREDUCED              the backend takes its messages after the riders are done, one group of
 *                          linked taps at a time: the same verdicts (README), far fewer states;
 *                          used for NT=4
 *   -DSTRICT_GATE          at quiescence every charged tap opened its gate, with no exception for
 *                          a validator that crashed mid-tap: fails without -DWRITE_AHEAD
 *   -DWRITE_AHEAD          the validator journals each challenge before sending it, so a crash
 *                          mid-tap leaves a torn entry: with -DSTRICT_GATE this passes
 *                          (the validator as built; scripts/model-check.sh runs every search,
 *                          the broken variants included, with both)
 *
 * Broken variants (each must make spin find a counterexample):
 *   -DFIRST_REPORT_WINS    the backend charges the first report of a counter at the fare the
 *                          reporter claims (today's main: no check that a validator signed the
 *                          challenge at that fare)
 *   -DNO_TORN_RECOVERY     the phone signs a re-sent torn challenge again with a new counter
 *                          instead of returning the identical stored authorization
 *   -DNO_TORN_JOURNAL      the reader journals nothing when a tap tears (no TornRecord)
 *   -DQR_WALLET_CHARGED    a pass only the wallet reported is charged
 *   -DFRAUD_ON_UNSIGNED    the backend keeps unverified bytes in the chain and compares them
 *   -DLOG_DERIVED_COUNTER  the wallet takes its next counter from its tap log, not from the
 *                          fsynced reservation (a power loss may drop the newest log rows)
 */

#define NR 2            /* riders: 0 runs the honest app, 1 a tampered one */
#define NV 2            /* validators (v = 0, 1) */
#ifndef NT
#define NT 3            /* tap attempts in all (a retry is an attempt): challenge ids 1..NT */
#endif
#define NC 4            /* counters in each rider's certificate: 0..NC-1 */
#define NRC 8           /* NR * NC; row (rider r, counter c) is r * NC + c */
#define TAMPERED 1      /* the rider whose app is tampered */

#define FARE 2          /* what every validator-signed challenge asks, and what a scan charges */
#define CHEAP 1         /* what the tampered app claims in a made-up challenge */
#define TOPUP 3         /* each rider's one top-up */

/* Bodies a phone signs (a tap's identity is the hash of its body): */
#define NONE 0          /* 1..NT: an authorization answering validator challenge k */
#define QRB (NT + 1)    /* a QR pass */
#define FAKEB (NT + 2)  /* an authorization of a challenge the tampered app made up */
#define GARB (NT + 3)   /* a genuine entry with one byte flipped (its signature fails) */
#define IS_NFC(b) ((b) >= 1 && (b) <= NT)
#if NT == 2
#define FOR_K(M) M(1) M(2)
#elif NT == 3
#define FOR_K(M) M(1) M(2) M(3)
#elif NT == 4
#define FOR_K(M) M(1) M(2) M(3) M(4)
#elif NT == 5
#define FOR_K(M) M(1) M(2) M(3) M(4) M(5)
#elif NT == 6
#define FOR_K(M) M(1) M(2) M(3) M(4) M(5) M(6)
#else
#error NT must be 2 to 6
#endif

/* The validator journal's state of a challenge (jst): */
#define J_NONE 0        /* nothing journaled */
#define J_TORN 1        /* journaled torn, inside the torn window: recoverable */
#define J_TORNX 2       /* torn, window over: uploaded as a TornRecord, never recovered */
#define J_TAP 3         /* a tap record: the gate opened */
#define J_CRASH 4       /* ghost: nothing journaled because the validator crashed mid-tap */

/* ---------------- wallets: durable state (the rest of a wallet is volatile) ---------------- */
byte hw[NR];            /* fsynced counter reservation: counters below it may have been used */
bit lost[NRC];          /* the tap-log row of counter c (its body: sig1) was lost to a power
                         * loss (WAL, synchronous=NORMAL: not yet checkpointed) */

/* ---------------- ghosts: what each phone really signed (unforgeable tokens) ---------------- */
byte sig1[NRC];         /* first body phone r signed with counter c and let out (NONE: none) */
byte sig2[NRC];         /* a second, different body: only the tampered app's cloned counter */

/* ---------------- validators: durable journal ---------------- */
byte chV[NT + 1];       /* v + 1 of the validator that signed challenge k (0: never issued) */
byte jst[NT + 1];       /* journal state of challenge k (J_*) */
byte jrc[NT + 1];       /* the tap record's row (rider * NC + counter) */
byte qscan[NRC];        /* QR tap records: bit v set once validator v scanned the pass */

/* ---------------- backend: each message is one database transaction ---------------- */
byte bbody[NRC];        /* the stored (verified) body of a row */
byte bchg[NRC];         /* what the row is charged now */
bit bfraud[NRC];        /* a fraud case on this counter */
byte bqv[NRC];          /* validators whose record of this pass arrived */
bit btorn[NT + 1];      /* a TornRecord of challenge k arrived */
bit bvrec[NT + 1];      /* a validator tap record of challenge k arrived */
short bal[NR];          /* account balance */
bit credited[NR];       /* the top-up is in the ledger (its idempotency key) */
bit frozen[NR];         /* a fraud case froze the account */
byte abuse[NR];         /* shared-pass abuse events */

/* ---------------- the search's bookkeeping (see README: delivery in groups) ---------------- */
byte comp[NRC];         /* the group of a row: rows linked through a challenge are one group */
byte kgrp[NT + 1];      /* the group of challenge k's records (NRC: no row) */
byte g;                 /* the group being delivered */
#ifndef REDUCED
bit ridersDone;         /* the riders are done (the backend may stop after) */
#endif

/* Scratch of deterministic code: zeroed at the end of every step (SCRATCH_CLEAR) so that it
 * never tells two states apart. (Not `hidden`: pan 6.5.2 then reported a violation that the
 * guided replay did not reproduce.) */
byte hi, hj, hk, hb, hn;
short hs;
#define SCRATCH_CLEAR hi = 0; hj = 0; hk = 0; hb = 0; hn = 0; hs = 0

/* The properties, by name (constant 1: a violated assertion names its property). */
bit charge_has_evidence = 1;       /* no charge without a validator-attested or rider-signed ride */
bit ride_charged_once = 1;         /* each ride (challenge, pass) charged at most once */
bit books_balance = 1;             /* balance = top-ups - charges */
bit fraud_on_signed_evidence = 1;  /* a fraud case only on two phone-signed bodies, one counter */
bit fraud_freezes = 1;             /* a fraud case freezes the account */
bit counter_never_reused = 1;      /* an honest wallet never signs two bodies with one counter */
bit gate_charged = 1;              /* at quiescence: every opened gate is charged */
bit no_charge_without_gate = 1;    /* at quiescence: a torn tap never completed is not charged */
bit scan_charged = 1;              /* at quiescence: every scanned pass is charged */
bit shared_pass_is_abuse = 1;      /* at quiescence: one pass at two validators is abuse */
bit topups_credited = 1;           /* at quiescence: every top-up credited, once */

/* Whether row i's phone signed body b with row i's counter. The tampered app may sign a
 * made-up challenge with any counter it used for a genuine one. */
#define SIGNED_BY_PHONE(i, b) \
  (sig1[i] == (b) || sig2[i] == (b) || \
   ((b) == FAKEB && (i) / NC == TAMPERED && IS_NFC(sig1[i])))

/* ============================ invariants (after every transaction) ============================ */

inline check_books()
{
  for (hi : 0 .. NRC - 1) {
    /* No charge without a validator-attested or rider-signed ride: an NFC tap answering a
     * challenge a validator signed, at that challenge's fare, signed by the rider's phone; a
     * pass only once a validator scanned it. */
    assert(charge_has_evidence && (bchg[hi] == 0 ||
           (IS_NFC(bbody[hi]) && chV[bbody[hi]] != 0 && SIGNED_BY_PHONE(hi, bbody[hi]) &&
            bchg[hi] == FARE) ||
           (bbody[hi] == QRB && qscan[hi] != 0 && bqv[hi] != 0 && bchg[hi] == FARE)));
    /* a fraud case freezes the account */
    assert(fraud_freezes && (!bfraud[hi] || frozen[hi / NC]))
  }
  /* Each ride charged at most once: a challenge is one ride (a pass is one row). */
  for (hk : 1 .. NT) {
    hn = 0;
    for (hi : 0 .. NRC - 1) {
      if
      :: bbody[hi] == hk && bchg[hi] > 0 -> hn++
      :: else -> skip
      fi
    }
    assert(ride_charged_once && hn <= 1)
  }
  /* The books: balance = top-ups - charges. */
  for (hj : 0 .. NR - 1) {
    hs = 0;
    for (hi : 0 .. NC - 1) {
      hs = hs + bchg[hj * NC + hi]
    }
    assert(books_balance && bal[hj] == credited[hj] * TOPUP - hs)
  }
}

/* ================================= backend: settlement rules ================================= */

/* Re-rates row i on the evidence stored; the difference is a ledger entry (a correction). */
inline recharge(i)
{
  hb = bbody[i];
  if
  :: IS_NFC(hb) ->
     /* charged on the validator-signed challenge at its fare, whoever reported first; not
      * when its validator says the gate stayed closed (a tap record beats a torn record) */
     hs = (btorn[hb] && !bvrec[hb] -> 0 : FARE)
  :: hb == QRB ->
#ifdef QR_WALLET_CHARGED
     hs = FARE
#else
     hs = (bqv[i] != 0 -> FARE : 0)        /* only the wallet reported it: pending */
#endif
  :: hb == FAKEB -> hs = CHEAP             /* stored only by FIRST_REPORT_WINS */
  :: else -> hs = 0
  fi;
  bal[i / NC] = bal[i / NC] - (hs - bchg[i]);
  bchg[i] = hs
}

inline recharge_challenge(k)
{
  for (hj : 0 .. NRC - 1) {
    if
    :: bbody[hj] == k -> recharge(hj)
    :: else -> skip
    fi
  }
}

/* Two different bodies with one counter: a fork, proven by two phone signatures. */
inline open_fraud(i, b)
{
  assert(fraud_on_signed_evidence && SIGNED_BY_PHONE(i, bbody[i]) && SIGNED_BY_PHONE(i, b));
  bfraud[i] = 1;
  frozen[i / NC] = 1
}

/* A verified body b for row i: stored once (keyed by tap identity), a duplicate re-rated, a
 * different body with the same counter a fork. */
inline settle(i, b)
{
  if
  :: bbody[i] == NONE -> bbody[i] = b; recharge(i)
  :: bbody[i] == b -> recharge(i)
  :: else -> open_fraud(i, b)
  fi
}

/* What the backend verifies of a body besides the phone's signature: a pass carries no
 * challenge; an authorization must answer a challenge that verifies under the registered key of
 * the validator it names, at the fare that validator asked (a made-up challenge does not). */
#define CHALLENGE_OK(b) ((b) == QRB || IS_NFC(b))

/* A wallet's self-report (sync) of row i: body b, whose phone signature verifies or not. */
inline wallet_report(i, b, phone_ok)
{
#if defined(FIRST_REPORT_WINS)
  if
  :: phone_ok -> settle(i, b)              /* the first report wins, at the fare it claims */
  :: else -> skip
  fi
#elif defined(FRAUD_ON_UNSIGNED)
  if
  :: !phone_ok && bbody[i] == NONE -> bbody[i] = b     /* unverified bytes kept in the chain */
  :: !phone_ok && bbody[i] != NONE && bbody[i] != b -> open_fraud(i, b)
  :: phone_ok && CHALLENGE_OK(b) -> settle(i, b)
  :: else -> skip
  fi
#else
  if
  :: phone_ok && CHALLENGE_OK(b) -> settle(i, b)
  :: else -> skip                          /* bad_signature / unsigned_challenge: 409, no case */
  fi
#endif
}

inline validator_record(k)
{
  bvrec[k] = 1;
  settle(jrc[k], k);
  recharge_challenge(k)
}

inline torn_record(k)
{
  btorn[k] = 1;
  recharge_challenge(k)                    /* a charge taken on the wallet's report is reversed */
}

inline qr_record(i, v)
{
  if
  :: bqv[i] != 0 && (bqv[i] & (1 << v)) == 0 -> abuse[i / NC]++   /* one pass, two validators */
  :: else -> skip
  fi;
  bqv[i] = bqv[i] | (1 << v);
  settle(i, QRB)
}

inline topup(r)
{
  if
  :: !credited[r] -> credited[r] = 1; bal[r] = bal[r] + TOPUP
  :: else -> skip                          /* the same payment intent again: no second credit */
  fi
}

/* ==================================== phones and readers ==================================== */

/* Phone r signs body b with counter c and commits it to its tap log before it answers. */
inline sign(r, c, b)
{
  assert(counter_never_reused && sig1[r * NC + c] == NONE);   /* whatever crashed */
  sig1[r * NC + c] = b
}

/* ============================ the network: persistent messages ============================ */
/*
 * A message, once sent, stays deliverable for ever: delivered any number of times (duplicates),
 * after any delay and in any order, or never (lost). Senders keep what they send in durable
 * outboxes and retry, so at quiescence every outbox is drained. A backend crash rolls its
 * transaction back: the same as a message lost.
 */
#ifndef REDUCED
#define IN_GROUP(x) 1           /* the backend runs beside the riders and takes any message */
#else
#define IN_GROUP(x) ((x) == g)  /* one group at a time (README) */
#endif
#define WREP1(i) :: d_step { IN_GROUP(comp[i]) && sig1[i] != NONE -> wallet_report(i, sig1[i], 1); check_books(); SCRATCH_CLEAR }
#define WREP2(i) :: d_step { IN_GROUP(comp[i]) && sig2[i] != NONE -> wallet_report(i, sig2[i], 1); check_books(); SCRATCH_CLEAR }
/* the tampered app's cheaper self-report: its phone signs a made-up challenge for the counter */
#define WFAKE(i) :: d_step { IN_GROUP(comp[i]) && IS_NFC(sig1[i]) -> wallet_report(i, FAKEB, 1); check_books(); SCRATCH_CLEAR }
/* anyone on the network: a copy of a genuine entry with one byte flipped */
#define WGARB(i) :: d_step { IN_GROUP(comp[i]) && sig1[i] != NONE -> wallet_report(i, GARB, 0); check_books(); SCRATCH_CLEAR }
#define VREC(k)  :: d_step { IN_GROUP(kgrp[k]) && jst[k] == J_TAP -> validator_record(k); check_books(); SCRATCH_CLEAR }
#define VTORN(k) :: d_step { IN_GROUP(kgrp[k]) && jst[k] == J_TORNX -> torn_record(k); check_books(); SCRATCH_CLEAR }
#define VQR(i, v) :: d_step { IN_GROUP(comp[i]) && (qscan[i] & (1 << v)) != 0 -> qr_record(i, v); check_books(); SCRATCH_CLEAR }

#define DELIVERIES \
  WREP1(0) WREP1(1) WREP1(2) WREP1(3) WREP1(4) WREP1(5) WREP1(6) WREP1(7) \
  WREP2(4) WREP2(5) WREP2(6) WREP2(7) \
  WFAKE(4) WFAKE(5) WFAKE(6) WFAKE(7) \
  WGARB(0) WGARB(1) WGARB(2) WGARB(3) WGARB(4) WGARB(5) WGARB(6) WGARB(7) \
  FOR_K(VREC) \
  FOR_K(VTORN) \
  VQR(0, 0) VQR(1, 0) VQR(2, 0) VQR(3, 0) VQR(4, 0) VQR(5, 0) VQR(6, 0) VQR(7, 0) \
  VQR(0, 1) VQR(1, 1) VQR(2, 1) VQR(3, 1) VQR(4, 1) VQR(5, 1) VQR(6, 1) VQR(7, 1)

/* Rows i and challenge k are linked when the row's phone signed k or k's tap record names it. */
#define LINKED(i, k) (sig1[i] == (k) || sig2[i] == (k) || (jst[k] == J_TAP && jrc[k] == (i)))

/* Groups: the connected components of rows and challenges (labelled by their smallest row). */
inline make_groups()
{
  for (hi : 0 .. NRC - 1) {
    comp[hi] = hi
  }
  for (hk : 1 .. NT) {
    hn = NRC;
    for (hi : 0 .. NRC - 1) {
      if
      :: LINKED(hi, hk) && comp[hi] < hn -> hn = comp[hi]
      :: else -> skip
      fi
    }
    for (hi : 0 .. NRC - 1) {
      if
      :: LINKED(hi, hk) && comp[hi] != hn ->
         hb = comp[hi];
         for (hj : 0 .. NRC - 1) {
           if
           :: comp[hj] == hb -> comp[hj] = hn
           :: else -> skip
           fi
         }
      :: else -> skip
      fi
    }
  }
  for (hk : 1 .. NT) {
    kgrp[hk] = NRC;
    for (hi : 0 .. NRC - 1) {
      if
      :: LINKED(hi, hk) -> kgrp[hk] = comp[hi]
      :: else -> skip
      fi
    }
  }
}

/* The first group after row `from` (NRC: none left). */
inline next_group(from)
{
  hn = NRC;
  for (hi : 0 .. NRC - 1) {
    if
    :: hn == NRC && hi >= from && comp[hi] == hi && sig1[hi] != NONE -> hn = hi
    :: else -> skip
    fi
  }
  g = hn
}

/* Every record of group g in a validator's outbox, in a fixed order (a validator retries until
 * its batch is acknowledged). Wallet reports are not forced: a phone may die before it syncs. */
inline drain_group()
{
  for (hk : 0 .. NRC - 1) {
    if
    :: comp[hk] == g && (qscan[hk] & 1) != 0 -> qr_record(hk, 0)
    :: else -> skip
    fi;
    if
    :: comp[hk] == g && (qscan[hk] & 2) != 0 -> qr_record(hk, 1)
    :: else -> skip
    fi
  }
  for (hk : 1 .. NT) {
    if
    :: kgrp[hk] == g && jst[hk] == J_TORNX -> torn_record(hk)
    :: kgrp[hk] == g && jst[hk] == J_TAP -> validator_record(hk)
    :: else -> skip
    fi
  }
}

/* What must hold once every outbox is drained. */
inline check_quiescence()
{
  check_books();
  for (hk : 1 .. NT) {
    /* every opened gate is charged, at its validator's fare (or its counter is a proven fork) */
    if
    :: jst[hk] == J_TAP ->
       assert(gate_charged && ((bbody[jrc[hk]] == hk && bchg[jrc[hk]] == FARE) || bfraud[jrc[hk]]))
    :: else -> skip
    fi;
    /* a tap is charged only if its gate opened, or if its validator crashed before it could
     * journal the outcome (the rider's signature is all the evidence left); a torn tap that
     * was never completed is never charged */
    for (hi : 0 .. NRC - 1) {
#ifdef STRICT_GATE
      assert(no_charge_without_gate && (!(bbody[hi] == hk && bchg[hi] > 0) || jst[hk] == J_TAP))
#else
      assert(no_charge_without_gate &&
             (!(bbody[hi] == hk && bchg[hi] > 0) || jst[hk] == J_TAP || jst[hk] == J_CRASH))
#endif
    }
  }
  for (hi : 0 .. NRC - 1) {
    /* every scanned pass is charged once; one pass at both validators is an abuse event */
    assert(scan_charged && (qscan[hi] == 0 || bchg[hi] == FARE || bfraud[hi]));
    assert(shared_pass_is_abuse && (qscan[hi] != 3 || abuse[hi / NC] > 0))
  }
  assert(topups_credited && credited[0] && credited[1])
}

/* Top-ups (duplicated or not), then quiescence: every torn window is over, every validator
 * outbox drained, every payment confirmed (twice: the same intent). */
inline quiescence()
{
  do
  :: d_step { !credited[0] -> topup(0); check_books(); SCRATCH_CLEAR }
  :: d_step { !credited[1] -> topup(1); check_books(); SCRATCH_CLEAR }
  :: break
  od;
  g = 0;    /* (a statement between the loop and the d_step) */
  d_step {
    for (hk : 1 .. NT) {
      if
      :: jst[hk] == J_TORN -> jst[hk] = J_TORNX
      :: else -> skip
      fi;
      if
      :: jst[hk] == J_TORNX -> torn_record(hk)
      :: jst[hk] == J_TAP -> validator_record(hk)
      :: else -> skip
      fi
    }
    for (hk : 0 .. NRC - 1) {
      if
      :: (qscan[hk] & 1) != 0 -> qr_record(hk, 0)
      :: else -> skip
      fi;
      if
      :: (qscan[hk] & 2) != 0 -> qr_record(hk, 1)
      :: else -> skip
      fi
    }
    topup(0);
    topup(1);
    topup(0);
    topup(1);
    check_quiescence();
    SCRATCH_CLEAR
  }
}

active proctype World()
{
  byte t;                /* attempts so far = the newest challenge id */
  byte r, v, c, k, n, s; /* one attempt's rider, validator, counter, challenge, tries, answer */
  bit done;

  /* ---------------- Phase 1: riders tap; phones and validators crash ---------------- */
  do
  :: t < NT ->
     atomic {
       t++;
       if :: r = 0 :: r = 1 fi;
       if :: v = 0 :: v = 1 fi;
       /* Since the last attempt, validator v's oldest torn windows may have run out (this
        * matters only to the next tap at v: here). */
       k = 1;
       do
       :: k <= t && chV[k] == v + 1 && jst[k] == J_TORN ->
          if
          :: jst[k] = J_TORNX; k++
          :: k = NT + 1
          fi
       :: k <= t && !(chV[k] == v + 1 && jst[k] == J_TORN) -> k++
       :: k > t -> break
       od;
#ifdef LOG_DERIVED_COUNTER
       /* a power loss took the newest log row; the counter restarts after the last row left */
       if
       :: hw[r] > 0 -> hw[r]--; lost[r * NC + hw[r]] = 1
       :: skip
       fi;
#endif
       if
       :: /* ======== NFC. The reader first re-sends its torn challenges, newest first (2 at most) */
          k = t - 1;
          do
          :: k == 0 || n == 2 || done -> break
          :: else ->
             if
             :: chV[k] == v + 1 && jst[k] == J_TORN ->
                n++;
                c = NC;                        /* the phone looks the challenge up in its log */
                for (hi : 0 .. NC - 1) {
                  if
                  :: sig1[r * NC + hi] == k && !lost[r * NC + hi] -> c = hi
                  :: else -> skip
                  fi
                }
                if
                :: c < NC -> lost[r * NC + c] = 1     /* a power loss took the row: not found */
                :: c < NC -> skip
                :: else -> skip
                fi;
                if
                :: c < NC && !lost[r * NC + c] ->
                   if
                   :: /* it answers with the identical stored authorization (no new counter) */
#ifdef NO_TORN_RECOVERY
                      if
                      :: hw[r] < NC -> c = hw[r]; hw[r]++; sign(r, c, k)
                      :: else -> c = NC
                      fi;
#endif
                      /* One transaction: torn entry out, tap record in; the gate opens. (A retry
                       * that tears again, or meets a crash, changes nothing: no attempt.) */
                      if
                      :: c < NC -> jst[k] = J_TAP; jrc[k] = r * NC + c
                      :: else -> skip
                      fi;
                      done = 1
                   :: skip                     /* older than the phone's tap window: refused */
                   fi
                :: else -> skip                /* not in this phone's log: 69C9 */
                fi
             :: else -> skip
             fi;
             k--
          od;
          /* ======== NFC: a fresh challenge, signed by validator v at its fare */
          if
          :: !done ->
             k = t;
             chV[k] = v + 1;
             if
             :: hw[r] < NC ->
                c = hw[r];
                hw[r]++;                       /* the reservation is fsynced before signing */
                if
                :: sign(r, c, k); s = 1        /* signed, committed to the tap log, answered */
                :: s = 2                       /* crashed after reserving: counter burned, no answer */
                fi
             :: r == TAMPERED && hw[r] > 0 && sig1[r * NC + hw[r] - 1] != NONE &&
                sig2[r * NC + hw[r] - 1] == NONE ->
                c = hw[r] - 1;                 /* the tampered app signs again with its last counter */
                sig2[r * NC + c] = k;
                s = 1
             :: else -> skip                   /* out of counters: refused, nothing signed */
             fi;
             if
             :: s == 1 ->
                if
                :: jst[k] = J_TAP; jrc[k] = r * NC + c   /* verified, journaled (fsync), gate opens */
#ifdef NO_TORN_JOURNAL
                :: skip                        /* no answer reached the reader: nothing journaled */
#else
                :: jst[k] = J_TORN             /* no answer reached the reader (tear, or phone crash) */
#endif
#ifdef WRITE_AHEAD
                :: jst[k] = J_TORN             /* crashed: the challenge journaled before it was
                                                * sent is found pending at restart: torn */
#else
                :: jst[k] = J_CRASH            /* the validator crashed before its journal */
#endif
                fi
             :: s == 2 ->
#ifndef NO_TORN_JOURNAL
                jst[k] = J_TORN                /* (had the validator crashed too: no trace at all) */
#else
                skip
#endif
             :: else -> skip
             fi
          :: else -> skip
          fi
       :: /* ======== QR: a new pass, logged before it is shown; scanned, or never */
          hw[r] < NC ->
          c = hw[r];
          hw[r]++;
          sign(r, c, QRB);
          if
          :: qscan[r * NC + c] = qscan[r * NC + c] | (1 << v)   /* scanned: journaled, gate opens */
          :: skip                              /* never scanned (or the validator crashed) */
          fi
       :: /* ======== the tampered rider shows a pass another validator already scanned */
          r == TAMPERED ->
          if
          :: qscan[TAMPERED * NC + 0] != 0 && (qscan[TAMPERED * NC + 0] & (1 << v)) == 0 -> c = 0
          :: qscan[TAMPERED * NC + 1] != 0 && (qscan[TAMPERED * NC + 1] & (1 << v)) == 0 -> c = 1
          :: qscan[TAMPERED * NC + 2] != 0 && (qscan[TAMPERED * NC + 2] & (1 << v)) == 0 -> c = 2
          :: qscan[TAMPERED * NC + 3] != 0 && (qscan[TAMPERED * NC + 3] & (1 << v)) == 0 -> c = 3
          :: else -> c = NC
          fi;
          if
          :: c < NC -> qscan[TAMPERED * NC + c] = qscan[TAMPERED * NC + c] | (1 << v)
          :: else -> skip
          fi
       fi;
       /* which validator signed a challenge matters only while it is torn and recoverable */
       for (hk : 1 .. NT) {
         if
         :: jst[hk] != J_TORN && chV[hk] > 1 -> chV[hk] = 1
         :: else -> skip
         fi
       }
       r = 0; v = 0; c = 0; k = 0; n = 0; s = 0; done = 0;
       SCRATCH_CLEAR
     }
  :: break
  od;
#ifndef REDUCED
  ridersDone = 1
}

/* The backend, beside the riders: any message, any time. */
active proctype Backend()
{
  do
  DELIVERIES
  :: ridersDone -> break
  od;
  quiescence()
}
#else
  /* ---------------- Phase 2: the backend receives the messages ----------------
   * Nothing a phone or a validator does depends on the backend, and a message never changes
   * once sent, so every interleaving of the riders' steps with the backend's reaches what
   * these orders reach (README; without -DREDUCED every interleaving is searched). */
  t = 0;
  d_step {
    hw[0] = 0;
    hw[1] = 0;
    for (hi : 0 .. NRC - 1) {
      lost[hi] = 0
    }
    for (hk : 1 .. NT) {
      chV[hk] = (chV[hk] != 0 -> 1 : 0);
      if
      :: jst[hk] == J_TORN -> jst[hk] = J_TORNX     /* time passes: every torn window is over */
      :: else -> skip
      fi
    }
    make_groups();
    next_group(0);
    SCRATCH_CLEAR
  }
  do
  DELIVERIES
  :: g < NRC -> d_step { drain_group(); check_books(); next_group(g + 1); SCRATCH_CLEAR }
  :: g == NRC -> break
  od;
  quiescence()
}
#endif
