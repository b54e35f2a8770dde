//! Conformance of the VRRPv3 state machine (RFC 9568 section 6) with a fake clock:
//! events in, actions and deadlines out. One test per rule, each citing its section.
//! The two-router tests pass every advert through encode and decode, so they exercise
//! the wire format as well.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use tr7::vrrp::{
    Action, Advertisement, AnnounceReason, ChecksumMode, Config, ConfigError, DropReason, Reason,
    State, Vrrp,
};

const VRID: u8 = 7;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Our primary address; PEER_HIGH is numerically above it, PEER_LOW below.
fn me() -> IpAddr {
    ip("192.0.2.5")
}
fn peer_high() -> IpAddr {
    ip("192.0.2.9")
}
fn peer_low() -> IpAddr {
    ip("192.0.2.3")
}
fn vips() -> Vec<IpAddr> {
    vec![ip("192.0.2.100"), ip("192.0.2.101")]
}

/// A fake clock: every instant is an offset in milliseconds from one base.
struct Clock(Instant);

impl Clock {
    fn new() -> Self {
        Clock(Instant::now())
    }
    fn at(&self, ms: u64) -> Instant {
        self.0 + Duration::from_millis(ms)
    }
    fn at_us(&self, us: u64) -> Instant {
        self.0 + Duration::from_micros(us)
    }
}

fn us(n: u64) -> Duration {
    Duration::from_micros(n)
}

// RFC 9568 6.1 at the default 100 cs interval, evaluated in microseconds:
// Skew_Time = (256 - p) * 1 s / 256, Master_Down_Interval = 3 s + Skew_Time.
const SKEW_100: u64 = 609_375; // priority 100
const MDI_100: u64 = 3_609_375;
const MDI_200: u64 = 3_218_750;
const SKEW_1: u64 = 996_093; // priority 1 (a failed signal), 996.09375 ms truncated
const MDI_1: u64 = 3_996_093;

fn config(priority: u8) -> Config {
    Config::new(VRID, priority, me(), vips())
}

fn advert(priority: u8, interval_cs: u16) -> Advertisement {
    Advertisement::new(VRID, priority, interval_cs, vips()).unwrap()
}

fn drain(v: &mut Vrrp) -> Vec<Action> {
    std::iter::from_fn(|| v.poll_action()).collect()
}

/// A started machine with its startup actions drained.
fn started(cfg: Config, clock: &Clock) -> Vrrp {
    let mut v = Vrrp::new(cfg, clock.at(0)).unwrap();
    v.handle_startup(clock.at(0));
    drain(&mut v);
    v
}

/// A machine that became master by Master_Down_Timer at the returned instant.
fn master(cfg: Config, clock: &Clock) -> (Vrrp, Instant) {
    let mut v = started(cfg, clock);
    let t = v.poll_timeout().unwrap();
    v.handle_timeout(t);
    drain(&mut v);
    assert_eq!(v.state(), State::Master);
    (v, t)
}

fn became_master(actions: &[Action]) -> bool {
    actions
        .iter()
        .any(|a| matches!(a, Action::BecomeMaster { .. }))
}

#[test]
fn startup_owner_becomes_master() {
    // RFC 9568 6.4.1: with priority 255 the Startup event sends an advert, announces the
    // addresses and enters Master, with the Adver_Timer at Advertisement_Interval.
    let clock = Clock::new();
    let mut v = Vrrp::new(config(255), clock.at(0)).unwrap();
    assert_eq!(v.poll_timeout(), None);
    v.handle_startup(clock.at(0));
    assert_eq!(
        drain(&mut v),
        vec![
            Action::SendAdvert { priority: 255 },
            Action::BecomeMaster {
                from: State::Initialize,
                reason: Reason::StartupAsOwner,
                accept_mode: true,
            },
            Action::Announce {
                reason: AnnounceReason::BecameMaster
            },
        ]
    );
    assert_eq!(v.state(), State::Master);
    assert_eq!(v.poll_timeout(), Some(clock.at(1000)));
}

#[test]
fn startup_non_owner_becomes_backup() {
    // RFC 9568 6.4.1: below 255 the Startup event sets Master_Adver_Interval to
    // Advertisement_Interval and the Master_Down_Timer to Master_Down_Interval
    // (3 * 1 s + 156 * 1 s / 256 = 3.609375 s), and enters Backup.
    let clock = Clock::new();
    let mut v = Vrrp::new(config(100), clock.at(0)).unwrap();
    v.handle_startup(clock.at(0));
    assert_eq!(
        drain(&mut v),
        vec![Action::BecomeBackup {
            from: State::Initialize,
            reason: Reason::Startup
        }]
    );
    assert_eq!(v.master_adver_interval_cs(), 100);
    assert_eq!(v.skew_time(), us(SKEW_100));
    assert_eq!(v.master_down_interval(), us(MDI_100));
    assert_eq!(v.poll_timeout(), Some(clock.at_us(MDI_100)));
    // A second Startup is not an event of the Backup state.
    v.handle_startup(clock.at(10));
    assert!(drain(&mut v).is_empty());
}

#[test]
fn master_down_timer_makes_backup_master() {
    // RFC 9568 6.4.2: when the Master_Down_Timer fires the backup sends an advert,
    // announces, and becomes master; a timeout call before the deadline does nothing.
    let clock = Clock::new();
    let mut v = started(config(100), &clock);
    v.handle_timeout(clock.at_us(MDI_100 - 1));
    assert!(drain(&mut v).is_empty());
    assert_eq!(v.state(), State::Backup);
    v.handle_timeout(clock.at_us(MDI_100));
    assert_eq!(
        drain(&mut v),
        vec![
            Action::SendAdvert { priority: 100 },
            Action::BecomeMaster {
                from: State::Backup,
                reason: Reason::MasterDown,
                accept_mode: false,
            },
            Action::Announce {
                reason: AnnounceReason::BecameMaster
            },
        ]
    );
    assert_eq!(v.poll_timeout(), Some(clock.at_us(MDI_100 + 1_000_000)));
    assert_eq!(v.state_since(), clock.at_us(MDI_100));
}

#[test]
fn master_sends_advert_each_interval() {
    // RFC 9568 6.4.3: when the Adver_Timer fires the master sends an advert and re-arms
    // the timer at Advertisement_Interval.
    let clock = Clock::new();
    let mut cfg = config(100);
    cfg.advert_interval_cs = 1; // 10 ms
    let (mut v, t) = master(cfg, &clock);
    let mut now = t;
    for _ in 0..5 {
        now += Duration::from_millis(10);
        assert_eq!(v.poll_timeout(), Some(now));
        v.handle_timeout(now);
        assert_eq!(drain(&mut v), vec![Action::SendAdvert { priority: 100 }]);
    }
    assert_eq!(v.state(), State::Master);
}

#[test]
fn backup_adopts_master_interval_and_recomputes_down_interval() {
    // RFC 9568 6.4.2: on an advert with priority >= ours the backup sets
    // Master_Adver_Interval to the advert's, recomputes Skew_Time and
    // Master_Down_Interval, and resets the Master_Down_Timer:
    // 1.5 s + 56 * 0.5 s / 256 = 1.609375 s for priority 200.
    let clock = Clock::new();
    let mut v = started(config(200), &clock);
    v.handle_advert(clock.at(100), peer_high(), &advert(250, 50))
        .unwrap();
    assert!(drain(&mut v).is_empty());
    assert_eq!(v.master_adver_interval_cs(), 50);
    assert_eq!(v.skew_time(), us(109_375));
    assert_eq!(v.poll_timeout(), Some(clock.at_us(100_000 + 1_609_375)));
    assert_eq!(v.master(), Some((peer_high(), 250)));
}

#[test]
fn backup_equal_priority_follows_master() {
    // RFC 9568 6.4.2: "greater than or equal to the local Priority": an equal-priority
    // master is followed even from a lower address (the address tie-break is the
    // master's rule, 6.4.3, not a reason for a backup to preempt).
    let clock = Clock::new();
    let mut v = started(config(100), &clock);
    for s in 1..=10u64 {
        v.handle_advert(clock.at(s * 1000), peer_low(), &advert(100, 100))
            .unwrap();
        v.handle_timeout(clock.at(s * 1000 + 999));
    }
    assert_eq!(v.state(), State::Backup);
    assert!(drain(&mut v).is_empty());
}

#[test]
fn backup_priority_zero_sets_timer_to_skew_time() {
    // RFC 9568 6.4.2: an advert with priority 0 sets the Master_Down_Timer to Skew_Time
    // (156 * 1 s / 256 = 609.375 ms), so the best backup takes over first.
    let clock = Clock::new();
    let mut v = started(config(100), &clock);
    v.handle_advert(clock.at(500), peer_high(), &advert(200, 100))
        .unwrap();
    v.handle_advert(clock.at(1000), peer_high(), &advert(0, 100))
        .unwrap();
    assert!(drain(&mut v).is_empty());
    assert_eq!(v.poll_timeout(), Some(clock.at_us(1_000_000 + SKEW_100)));
    assert_eq!(v.master(), None);
    v.handle_timeout(clock.at_us(1_000_000 + SKEW_100));
    assert!(became_master(&drain(&mut v)));
    assert_eq!(v.counters().priority_zero_received, 1);
}

#[test]
fn preempt_off_follows_lower_priority_master() {
    // RFC 9568 6.4.2: with Preempt_Mode false a backup follows any master, also one of
    // lower priority, and never takes over while its adverts keep coming.
    let clock = Clock::new();
    let mut cfg = config(200);
    cfg.preempt = false;
    let mut v = started(cfg, &clock);
    for s in 1..=20u64 {
        v.handle_advert(clock.at(s * 1000), peer_low(), &advert(100, 100))
            .unwrap();
        v.handle_timeout(clock.at(s * 1000 + 999));
    }
    assert_eq!(v.state(), State::Backup);
    assert_eq!(v.master(), Some((peer_low(), 100)));
    assert_eq!(v.counters().lower_priority_discarded, 0);
    // Once that master is silent, the usual Master_Down_Interval applies.
    let t = v.poll_timeout().unwrap();
    assert_eq!(t, clock.at_us(20_000_000 + MDI_200));
    v.handle_timeout(t);
    assert!(became_master(&drain(&mut v)));
}

#[test]
fn owner_preempts_even_with_preempt_off() {
    // RFC 9568 6.1 Preempt_Mode: "the router that owns the IPvX address(es) ... always
    // preempts, independent of the setting of this flag". An owner that starts as
    // backup (its signal had failed) and recovers discards a lower master's adverts.
    let clock = Clock::new();
    let mut cfg = config(255);
    cfg.preempt = false;
    let mut v = Vrrp::new(cfg, clock.at(0)).unwrap();
    v.set_fault(clock.at(0), true);
    v.handle_startup(clock.at(0));
    assert_eq!(v.state(), State::Backup);
    v.set_fault(clock.at(100), false);
    v.handle_advert(clock.at(200), peer_low(), &advert(100, 100))
        .unwrap();
    assert_eq!(v.counters().lower_priority_discarded, 1);
}

#[test]
fn preempt_on_discards_lower_priority_and_takes_over() {
    // RFC 9568 6.4.2: with Preempt_Mode true a backup discards adverts of lower
    // priority, so its Master_Down_Timer fires and it becomes master; RFC 9568 6.4.3:
    // the old master then hears the higher priority and becomes backup.
    let clock = Clock::new();
    let mut v = started(config(200), &clock);
    // MDI at priority 200: 3 s + 56 * 1 s / 256 = 3.21875 s.
    v.handle_advert(clock.at(1000), peer_low(), &advert(100, 100))
        .unwrap();
    v.handle_advert(clock.at(2000), peer_low(), &advert(100, 100))
        .unwrap();
    assert_eq!(v.poll_timeout(), Some(clock.at_us(MDI_200)));
    assert_eq!(v.counters().lower_priority_discarded, 2);
    v.handle_timeout(clock.at_us(MDI_200));
    assert!(became_master(&drain(&mut v)));

    let (mut old, t) = master(config(100), &clock);
    old.handle_advert(t, peer_high(), &advert(200, 100))
        .unwrap();
    assert_eq!(old.state(), State::Backup);
}

#[test]
fn preempt_delay_keeps_lower_master_until_it_runs_out() {
    // Preempt delay (keepalived's preempt_delay, beyond RFC 9568 6.4.2): a preempting
    // backup follows a lower-priority master for the delay, counted from the first such
    // advert, and only then discards its adverts as RFC 9568 6.4.2 says.
    let clock = Clock::new();
    let mut cfg = config(200);
    cfg.preempt_delay = Duration::from_secs(5);
    let mut v = started(cfg, &clock);
    // Adverts at 0.5 s, 1.5 s, ...: the first sets the delay's start at 0.5 s.
    for s in 0..8u64 {
        let now = clock.at(500 + s * 1000);
        v.handle_timeout(now);
        v.handle_advert(now, peer_low(), &advert(100, 100)).unwrap();
        assert_eq!(v.state(), State::Backup, "at {} ms", 500 + s * 1000);
        if now < clock.at(5500) {
            assert_eq!(v.poll_timeout(), Some(now + us(MDI_200)));
        }
    }
    // The last advert followed was at 4.5 s; those at 5.5, 6.5 and 7.5 s were discarded,
    // so the Master_Down_Timer set at 4.5 s fires.
    assert_eq!(v.counters().lower_priority_discarded, 3);
    assert_eq!(v.poll_timeout(), Some(clock.at_us(4_500_000 + MDI_200)));
    v.handle_timeout(clock.at_us(4_500_000 + MDI_200));
    assert!(became_master(&drain(&mut v)));
}

#[test]
fn preempt_delay_restarts_after_higher_priority_master() {
    // Preempt delay: an advert of priority >= ours ends the lower-priority episode, so
    // a later lower-priority master gets the full delay again.
    let clock = Clock::new();
    let mut cfg = config(200);
    cfg.preempt_delay = Duration::from_secs(2);
    let mut v = started(cfg, &clock);
    v.handle_advert(clock.at(0), peer_low(), &advert(100, 100))
        .unwrap();
    v.handle_advert(clock.at(1000), peer_high(), &advert(250, 100))
        .unwrap();
    v.handle_advert(clock.at(2500), peer_low(), &advert(100, 100))
        .unwrap();
    v.handle_advert(clock.at(4000), peer_low(), &advert(100, 100))
        .unwrap();
    assert_eq!(v.counters().lower_priority_discarded, 0);
    v.handle_advert(clock.at(4500), peer_low(), &advert(100, 100))
        .unwrap();
    assert_eq!(v.counters().lower_priority_discarded, 1);
}

#[test]
fn master_yields_to_higher_priority() {
    // RFC 9568 6.4.3: a higher priority advert makes the master cancel the Adver_Timer,
    // adopt the advert's interval, set the Master_Down_Timer and go Backup. It first
    // sends one advert with its own priority (beyond the RFC) so the winner learns that
    // there were two masters and re-announces.
    let clock = Clock::new();
    let (mut v, t) = master(config(100), &clock);
    let now = t + Duration::from_millis(300);
    v.handle_advert(now, peer_low(), &advert(150, 20)).unwrap();
    assert_eq!(
        drain(&mut v),
        vec![
            Action::SendAdvert { priority: 100 },
            Action::BecomeBackup {
                from: State::Master,
                reason: Reason::HigherPriority {
                    from: peer_low(),
                    priority: 150
                }
            }
        ]
    );
    assert_eq!(v.master_adver_interval_cs(), 20);
    // 0.6 s + 156 * 0.2 s / 256 = 721.875 ms.
    assert_eq!(v.poll_timeout(), Some(now + us(721_875)));
    assert_eq!(v.master(), Some((peer_low(), 150)));
}

#[test]
fn equal_priority_tie_breaks_on_larger_primary_address() {
    // RFC 9568 6.4.3: at equal priority the router with the larger primary address
    // stays master: a master hearing an equal priority from a larger address goes
    // Backup; from a smaller address it stays master and answers at once.
    let clock = Clock::new();
    let (mut v, t) = master(config(100), &clock);
    v.handle_advert(t, peer_low(), &advert(100, 100)).unwrap();
    assert_eq!(v.state(), State::Master);
    assert_eq!(drain(&mut v)[0], Action::SendAdvert { priority: 100 });
    v.handle_advert(t, peer_high(), &advert(100, 100)).unwrap();
    assert_eq!(v.state(), State::Backup);
    assert_eq!(
        drain(&mut v)[1],
        Action::BecomeBackup {
            from: State::Master,
            reason: Reason::EqualPriorityHigherAddress {
                from: peer_high(),
                priority: 100
            }
        }
    );
}

#[test]
fn equal_priority_tie_break_ipv6_compares_numerically() {
    // RFC 9568 6.4.3 for IPv6: primary addresses (link-local) compare as numbers, so
    // fe80::1:0 beats fe80::ff.
    let clock = Clock::new();
    let vips6 = vec![ip("fe80::100"), ip("2001:db8::100")];
    let cfg = Config::new(VRID, 100, ip("fe80::ff"), vips6.clone());
    let (mut v, t) = master(cfg, &clock);
    let a = Advertisement::new(VRID, 100, 100, vips6).unwrap();
    v.handle_advert(t, ip("fe80::1:0"), &a).unwrap();
    assert_eq!(v.state(), State::Backup);
}

#[test]
fn master_answers_lower_priority_at_once_and_reannounces() {
    // Healed partition (issue 5, beyond RFC 9568 6.4.3's "discard"): a master hearing a
    // lower-priority master sends its own advert at once, resets the Adver_Timer and
    // re-announces its addresses; re-announcements are limited to one per
    // Master_Down_Interval while adverts are always answered.
    let clock = Clock::new();
    let (mut v, t) = master(config(100), &clock);
    // Long after the became-master announcement.
    let now = t + Duration::from_secs(5);
    v.handle_timeout(now);
    drain(&mut v);
    v.handle_advert(now, peer_high(), &advert(50, 100)).unwrap();
    assert_eq!(
        drain(&mut v),
        vec![
            Action::SendAdvert { priority: 100 },
            Action::Announce {
                reason: AnnounceReason::LowerPriorityMaster {
                    from: peer_high(),
                    priority: 50
                }
            },
        ]
    );
    assert_eq!(v.poll_timeout(), Some(now + Duration::from_millis(1000)));
    // Within Master_Down_Interval of that announcement: answered, not re-announced.
    let soon = now + us(MDI_100 - 1);
    v.handle_advert(soon, peer_high(), &advert(50, 100))
        .unwrap();
    assert_eq!(drain(&mut v), vec![Action::SendAdvert { priority: 100 }]);
    let later = now + us(MDI_100);
    v.handle_advert(later, peer_high(), &advert(50, 100))
        .unwrap();
    assert_eq!(drain(&mut v).len(), 2);
    assert_eq!(v.state(), State::Master);
    // Right after becoming master (it just announced), a lower master is answered
    // without a second burst: the usual case of a preempted master's yield advert.
    let (mut fresh, t) = master(config(100), &clock);
    fresh
        .handle_advert(t, peer_high(), &advert(50, 100))
        .unwrap();
    assert_eq!(
        drain(&mut fresh),
        vec![Action::SendAdvert { priority: 100 }]
    );
}

#[test]
fn master_answers_priority_zero_with_advert() {
    // RFC 9568 6.4.3: a master hearing priority 0 sends an advert and resets the
    // Adver_Timer (another router left; backups must see that a master remains).
    let clock = Clock::new();
    let (mut v, t) = master(config(100), &clock);
    let now = t + Duration::from_millis(250);
    v.handle_advert(now, peer_high(), &advert(0, 100)).unwrap();
    assert_eq!(drain(&mut v), vec![Action::SendAdvert { priority: 100 }]);
    assert_eq!(v.poll_timeout(), Some(now + Duration::from_millis(1000)));
    assert_eq!(v.state(), State::Master);
}

#[test]
fn shutdown_from_master_sends_priority_zero() {
    // RFC 9568 6.4.3: Shutdown in Master cancels the Adver_Timer, sends an advert with
    // priority 0 and goes to Initialize (the shell releases the addresses).
    let clock = Clock::new();
    let (mut v, t) = master(config(100), &clock);
    v.handle_shutdown(t);
    assert_eq!(
        drain(&mut v),
        vec![
            Action::SendAdvert { priority: 0 },
            Action::BecomeInitialize {
                from: State::Master,
                reason: Reason::Shutdown
            },
        ]
    );
    assert_eq!(v.poll_timeout(), None);
    assert_eq!(v.state(), State::Initialize);
    assert_eq!(v.counters().priority_zero_sent, 1);
    // Initialize ignores adverts and a second shutdown.
    assert_eq!(
        v.handle_advert(t, peer_high(), &advert(100, 100)),
        Err(DropReason::NotRunning)
    );
    v.handle_shutdown(t);
    assert!(drain(&mut v).is_empty());
}

#[test]
fn shutdown_from_backup_sends_nothing() {
    // RFC 9568 6.4.2: Shutdown in Backup cancels the Master_Down_Timer and goes to
    // Initialize without sending.
    let clock = Clock::new();
    let mut v = started(config(100), &clock);
    v.handle_shutdown(clock.at(10));
    assert_eq!(
        drain(&mut v),
        vec![Action::BecomeInitialize {
            from: State::Backup,
            reason: Reason::Shutdown
        }]
    );
    assert_eq!(v.poll_timeout(), None);
    // Startup again works from Initialize (RFC 9568 6.4.1).
    v.handle_startup(clock.at(20));
    assert_eq!(v.state(), State::Backup);
}

#[test]
fn accept_mode_is_reported_to_the_shell() {
    // RFC 9568 6.1 Accept_Mode: reported with BecomeMaster; the owner always accepts.
    let clock = Clock::new();
    for (priority, accept, expected) in [(100, false, false), (100, true, true), (255, false, true)]
    {
        let mut cfg = config(priority);
        cfg.accept_mode = accept;
        let mut v = Vrrp::new(cfg, clock.at(0)).unwrap();
        v.handle_startup(clock.at(0));
        if let Some(t) = v.poll_timeout().filter(|_| v.state() == State::Backup) {
            v.handle_timeout(t);
        }
        let reported = drain(&mut v).into_iter().find_map(|a| match a {
            Action::BecomeMaster { accept_mode, .. } => Some(accept_mode),
            _ => None,
        });
        assert_eq!(
            reported,
            Some(expected),
            "priority {priority} accept {accept}"
        );
        assert_eq!(v.accept_mode(), expected);
    }
}

fn unicast(priority: u8, peers: Vec<IpAddr>) -> Config {
    let mut cfg = config(priority);
    cfg.unicast_peers = peers;
    cfg
}

#[test]
fn unicast_single_peer_priority_zero_takes_over_at_once() {
    // Unicast fast takeover (beyond RFC 9568 6.4.2): with exactly one peer, priority 0
    // from it makes the backup master immediately, without Skew_Time, since no other
    // backup can race it.
    let clock = Clock::new();
    let mut v = started(unicast(100, vec![peer_high()]), &clock);
    v.handle_advert(clock.at(500), peer_high(), &advert(200, 100))
        .unwrap();
    v.handle_advert(clock.at(1000), peer_high(), &advert(0, 100))
        .unwrap();
    assert_eq!(
        drain(&mut v),
        vec![
            Action::SendAdvert { priority: 100 },
            Action::BecomeMaster {
                from: State::Backup,
                reason: Reason::PeerReleased { from: peer_high() },
                accept_mode: false,
            },
            Action::Announce {
                reason: AnnounceReason::BecameMaster
            },
        ]
    );
    assert_eq!(v.state_since(), clock.at(1000));
}

#[test]
fn fast_takeover_needs_exactly_one_peer_and_the_option() {
    // Unicast fast takeover applies only with exactly one peer and the option on; with
    // several peers, multicast, or the option off, RFC 9568 6.4.2's Skew_Time holds.
    let clock = Clock::new();
    let mut off = unicast(100, vec![peer_high()]);
    off.fast_takeover_on_priority_zero = false;
    for cfg in [
        unicast(100, vec![peer_high(), peer_low()]),
        config(100),
        off,
    ] {
        let mut v = started(cfg, &clock);
        v.handle_advert(clock.at(1000), peer_high(), &advert(0, 100))
            .unwrap();
        assert_eq!(v.state(), State::Backup);
        assert_eq!(v.poll_timeout(), Some(clock.at_us(1_000_000 + SKEW_100)));
    }
    assert!(Config::new(VRID, 100, me(), vips()).fast_takeover_on_priority_zero);
}

#[test]
fn unicast_drops_and_counts_other_sources() {
    // Unicast filtering: with peers configured, adverts from other sources are dropped
    // and counted, and change nothing.
    let clock = Clock::new();
    let mut v = started(unicast(100, vec![peer_high()]), &clock);
    let stranger = ip("192.0.2.77");
    assert_eq!(
        v.handle_advert(clock.at(100), stranger, &advert(0, 100)),
        Err(DropReason::NotUnicastPeer { src: stranger })
    );
    assert_eq!(v.counters().dropped.not_unicast_peer, 1);
    assert_eq!(v.counters().adverts_received, 0);
    assert_eq!(v.poll_timeout(), Some(clock.at_us(MDI_100)));
    v.handle_advert(clock.at(200), peer_high(), &advert(200, 100))
        .unwrap();
    assert_eq!(v.counters().adverts_received, 1);
}

#[test]
fn filters_drop_foreign_and_own_adverts() {
    // RFC 9568 7.1: adverts for another VRID or family are not ours; our own advert
    // looped back is not a second router. Each is dropped and counted by reason.
    let clock = Clock::new();
    let mut v = started(config(100), &clock);
    let other_vrid = Advertisement::new(8, 200, 100, vips()).unwrap();
    assert_eq!(
        v.handle_advert(clock.at(1), peer_high(), &other_vrid),
        Err(DropReason::VridMismatch { got: 8 })
    );
    let v6 = Advertisement::new(VRID, 200, 100, vec![ip("fe80::1")]).unwrap();
    assert_eq!(
        v.handle_advert(clock.at(1), ip("fe80::2"), &v6),
        Err(DropReason::FamilyMismatch)
    );
    assert_eq!(
        v.handle_advert(clock.at(1), peer_high(), &v6),
        Err(DropReason::FamilyMismatch)
    );
    assert_eq!(
        v.handle_advert(clock.at(1), me(), &advert(200, 100)),
        Err(DropReason::OwnAdvert)
    );
    let d = &v.counters().dropped;
    assert_eq!(
        (d.vrid_mismatch, d.family_mismatch, d.own_advert),
        (1, 2, 1)
    );
    assert_eq!(DropReason::OwnAdvert.reason(), "own_advert");
    assert_eq!(v.poll_timeout(), Some(clock.at_us(MDI_100)));
}

#[test]
fn address_list_mismatch_is_counted_not_dropped() {
    // RFC 9568 7.1: a differing address list MAY be logged; the advert still counts, so
    // a misconfigured pair does not end up with two masters. Order does not matter.
    let clock = Clock::new();
    let mut v = started(config(100), &clock);
    let reordered = Advertisement::new(VRID, 200, 100, vips().into_iter().rev().collect());
    v.handle_advert(clock.at(1), peer_high(), &reordered.unwrap())
        .unwrap();
    assert_eq!(v.counters().address_list_mismatch, 0);
    let other = Advertisement::new(VRID, 200, 100, vec![ip("192.0.2.200")]).unwrap();
    v.handle_advert(clock.at(2), peer_high(), &other).unwrap();
    assert_eq!(v.counters().address_list_mismatch, 1);
    assert_eq!(v.master(), Some((peer_high(), 200)));
}

#[test]
fn fault_makes_master_give_up_with_priority_zero() {
    // Tracked signal (issue 6): a failing signal on the master sends priority 0 and goes
    // Backup; while failed the router advertises priority 1 and waits the longest skew.
    let clock = Clock::new();
    let (mut v, t) = master(config(200), &clock);
    v.set_fault(t, true);
    assert_eq!(
        drain(&mut v),
        vec![
            Action::SendAdvert { priority: 0 },
            Action::BecomeBackup {
                from: State::Master,
                reason: Reason::Fault
            },
        ]
    );
    assert!(v.is_faulted());
    assert_eq!(v.effective_priority(), 1);
    assert_eq!(v.poll_timeout(), Some(t + us(MDI_1)));
    // Setting the same value again is not an edge.
    v.set_fault(t, true);
    assert!(drain(&mut v).is_empty());
}

#[test]
fn faulted_backup_does_not_preempt_until_recovered() {
    // Tracked signal (issue 6): while failed a backup does not preempt a lower-priority
    // master; after recovery normal preemption (RFC 9568 6.4.2) applies again.
    let clock = Clock::new();
    let mut v = started(config(200), &clock);
    v.set_fault(clock.at(0), true);
    for s in 1..=10u64 {
        v.handle_advert(clock.at(s * 1000), peer_low(), &advert(100, 100))
            .unwrap();
        v.handle_timeout(clock.at(s * 1000 + 999));
    }
    assert_eq!(v.state(), State::Backup);
    assert_eq!(v.counters().lower_priority_discarded, 0);
    v.set_fault(clock.at(10_500), false);
    v.handle_advert(clock.at(11_000), peer_low(), &advert(100, 100))
        .unwrap();
    assert_eq!(v.counters().lower_priority_discarded, 1);
    // The timer was last reset while failed, with the priority-1 Master_Down_Interval.
    let t = v.poll_timeout().unwrap();
    assert_eq!(t, clock.at_us(10_000_000 + MDI_1));
    v.handle_timeout(t);
    assert!(became_master(&drain(&mut v)));
}

#[test]
fn faulted_backup_skips_fast_takeover_but_is_last_resort() {
    // Tracked signal: a failed backup does not hurry on priority 0 (it waits Skew_Time
    // at priority 1), but still takes over when no master is heard, since a degraded
    // master beats none.
    let clock = Clock::new();
    let mut v = started(unicast(100, vec![peer_high()]), &clock);
    v.set_fault(clock.at(0), true);
    v.handle_advert(clock.at(1000), peer_high(), &advert(0, 100))
        .unwrap();
    assert_eq!(v.state(), State::Backup);
    assert_eq!(v.poll_timeout(), Some(clock.at_us(1_000_000 + SKEW_1)));
    v.handle_timeout(clock.at_us(1_000_000 + SKEW_1));
    let actions = drain(&mut v);
    assert_eq!(actions[0], Action::SendAdvert { priority: 1 });
    assert!(became_master(&actions));
}

#[test]
fn fault_recovery_while_master_advertises_real_priority_at_once() {
    // Tracked signal: a master of last resort that recovers sends its configured
    // priority at once, so lower backups stop preempting it without waiting.
    let clock = Clock::new();
    let mut v = started(config(200), &clock);
    v.set_fault(clock.at(0), true);
    let t = v.poll_timeout().unwrap();
    v.handle_timeout(t);
    assert_eq!(drain(&mut v)[0], Action::SendAdvert { priority: 1 });
    v.set_fault(t + Duration::from_millis(10), false);
    assert_eq!(drain(&mut v), vec![Action::SendAdvert { priority: 200 }]);
    assert_eq!(v.state(), State::Master);
}

#[test]
fn set_priority_on_master_advertises_at_once() {
    // A priority change on the master is advertised immediately, so a higher backup can
    // preempt without waiting an interval; priority 0 is refused (RFC 9568 5.2.4
    // reserves it for giving up).
    let clock = Clock::new();
    let (mut v, t) = master(config(200), &clock);
    v.set_priority(t, 50).unwrap();
    assert_eq!(drain(&mut v), vec![Action::SendAdvert { priority: 50 }]);
    v.set_priority(t, 50).unwrap();
    assert!(drain(&mut v).is_empty());
    assert_eq!(
        v.set_priority(t, 0),
        Err(ConfigError::PriorityZero { vrid: VRID })
    );
    assert_eq!(v.effective_priority(), 50);
    // A backup's new priority changes what it preempts.
    let mut b = started(config(100), &clock);
    b.handle_advert(clock.at(1), peer_low(), &advert(150, 100))
        .unwrap();
    b.set_priority(clock.at(2), 180).unwrap();
    assert!(drain(&mut b).is_empty());
    b.handle_advert(clock.at(3), peer_low(), &advert(150, 100))
        .unwrap();
    assert_eq!(b.counters().lower_priority_discarded, 1);
}

#[test]
fn config_is_validated() {
    // Vrrp::new refuses configurations the protocol cannot express.
    let now = Instant::now();
    assert_eq!(
        Vrrp::new(config(0), now).unwrap_err(),
        ConfigError::PriorityZero { vrid: VRID }
    );
    let mut c = config(100);
    c.vrid = 0;
    assert!(matches!(
        Vrrp::new(c, now).unwrap_err(),
        ConfigError::Advert { .. }
    ));
    let mut c = config(100);
    c.advert_interval_cs = 4096;
    assert!(Vrrp::new(c, now).is_err());
    let mut c = config(100);
    c.addresses = vec![];
    assert!(Vrrp::new(c, now).is_err());
    let mut c = config(100);
    c.unicast_peers = vec![ip("2001:db8::1")];
    assert!(matches!(
        Vrrp::new(c, now).unwrap_err(),
        ConfigError::FamilyMismatch { .. }
    ));
    let c = Config::new(VRID, 100, ip("fe80::1"), vips());
    assert!(matches!(
        Vrrp::new(c, now).unwrap_err(),
        ConfigError::FamilyMismatch { .. }
    ));
    let c = unicast(100, vec![me()]);
    let err = Vrrp::new(c, now).unwrap_err();
    assert!(err.to_string().contains("own primary address"), "{err}");
}

// ---------------------------------------------------------------------------------
// Two routers on one link. Every advert goes through encode and decode.

struct Router {
    vrrp: Vrrp,
    addr: IpAddr,
    masters: Vec<Instant>,
    announces: usize,
}

struct Link {
    routers: [Router; 2],
    up: bool,
    mode: ChecksumMode,
}

impl Link {
    fn new(a: Config, b: Config, mode: ChecksumMode) -> Self {
        let mk = |cfg: Config| Router {
            addr: cfg.primary_address,
            vrrp: Vrrp::new(cfg, Instant::now()).unwrap(),
            masters: Vec::new(),
            announces: 0,
        };
        Link {
            routers: [mk(a), mk(b)],
            up: true,
            mode,
        }
    }

    /// Carries out every pending action at `now`, delivering adverts while the link is up.
    fn settle(&mut self, now: Instant) {
        loop {
            let mut progressed = false;
            for i in 0..2 {
                while let Some(action) = self.routers[i].vrrp.poll_action() {
                    progressed = true;
                    match action {
                        Action::SendAdvert { priority } => {
                            let r = &self.routers[i];
                            let dst = r.vrrp.config().family().multicast_group();
                            let bytes = r
                                .vrrp
                                .advertisement(priority)
                                .encode(r.addr, dst, self.mode)
                                .unwrap();
                            let src = r.addr;
                            if self.up {
                                let (adv, _) = Advertisement::decode(&bytes, src, dst).unwrap();
                                let _ = self.routers[1 - i].vrrp.handle_advert(now, src, &adv);
                            }
                        }
                        Action::BecomeMaster { .. } => self.routers[i].masters.push(now),
                        Action::Announce { .. } => self.routers[i].announces += 1,
                        Action::BecomeBackup { .. } | Action::BecomeInitialize { .. } => {}
                    }
                }
            }
            if !progressed {
                return;
            }
        }
    }

    /// Runs the timers up to `end` in deadline order.
    fn run_until(&mut self, end: Instant) {
        loop {
            let next = self
                .routers
                .iter()
                .filter_map(|r| r.vrrp.poll_timeout())
                .min();
            match next {
                Some(t) if t <= end => {
                    for r in &mut self.routers {
                        r.vrrp.handle_timeout(t);
                    }
                    self.settle(t);
                }
                _ => return,
            }
        }
    }

    fn states(&self) -> [State; 2] {
        [self.routers[0].vrrp.state(), self.routers[1].vrrp.state()]
    }
}

fn pair(a_prio: u8, b_prio: u8, interval_cs: u16) -> (Config, Config) {
    let mut a = Config::new(VRID, a_prio, ip("192.0.2.1"), vips());
    let mut b = Config::new(VRID, b_prio, ip("192.0.2.2"), vips());
    a.advert_interval_cs = interval_cs;
    b.advert_interval_cs = interval_cs;
    a.unicast_peers = vec![b.primary_address];
    b.unicast_peers = vec![a.primary_address];
    (a, b)
}

#[test]
fn pair_elects_higher_priority_and_hands_over_on_shutdown_at_once() {
    // RFC 9568 6.4.1-6.4.3 end to end: A (200) and B (100) start together; A wins by
    // Master_Down_Timer, B follows; on A's shutdown B (single unicast peer) takes over
    // in the same instant; when A returns it preempts B.
    let clock = Clock::new();
    let (a, b) = pair(200, 100, 1);
    let mut link = Link::new(a, b, ChecksumMode::PseudoHeader);
    for r in &mut link.routers {
        r.vrrp.handle_startup(clock.at(0));
    }
    link.settle(clock.at(0));
    link.run_until(clock.at(1000));
    assert_eq!(link.states(), [State::Master, State::Backup]);
    assert!(link.routers[1].masters.is_empty());

    link.routers[0].vrrp.handle_shutdown(clock.at(1000));
    link.settle(clock.at(1000));
    assert_eq!(link.states(), [State::Initialize, State::Master]);
    assert_eq!(link.routers[1].masters, vec![clock.at(1000)]);

    link.routers[0].vrrp.handle_startup(clock.at(2000));
    link.settle(clock.at(2000));
    link.run_until(clock.at(3000));
    assert_eq!(link.states(), [State::Master, State::Backup]);
}

#[test]
fn pair_takes_over_within_master_down_interval_when_master_dies() {
    // RFC 9568 6.4.2: when the master stops sending (kill -9), the backup becomes master
    // after exactly Master_Down_Interval from the last advert it heard.
    let clock = Clock::new();
    let (a, b) = pair(200, 100, 10);
    let mut link = Link::new(a, b, ChecksumMode::MessageOnly);
    for r in &mut link.routers {
        r.vrrp.handle_startup(clock.at(0));
    }
    link.settle(clock.at(0));
    link.run_until(clock.at(2000));
    assert_eq!(link.states(), [State::Master, State::Backup]);
    // A's last advert before 2 s; after that A is gone without a word.
    let last_advert = link.routers[0].vrrp.poll_timeout().unwrap() - Duration::from_millis(100);
    link.routers[0].vrrp = Vrrp::new(link.routers[0].vrrp.config().clone(), clock.at(0)).unwrap();
    link.run_until(clock.at(5000));
    // 0.3 s + 156 * 0.1 s / 256 = 360.9375 ms.
    assert_eq!(link.routers[1].masters, vec![last_advert + us(360_937)]);
}

#[test]
fn pair_heals_partition_within_one_advert_interval() {
    // Healed partition (issue 5): both routers became master while cut off. After the
    // link returns, the first advert either sends resolves it: the higher-priority
    // master answers at once and re-announces, the lower one goes Backup, and only one
    // master remains before one advert interval has passed.
    let clock = Clock::new();
    let (a, b) = pair(200, 100, 100);
    let mut link = Link::new(a, b, ChecksumMode::PseudoHeader);
    link.up = false;
    for r in &mut link.routers {
        r.vrrp.handle_startup(clock.at(0));
    }
    link.settle(clock.at(0));
    link.run_until(clock.at(10_000));
    assert_eq!(link.states(), [State::Master, State::Master]);
    let announces_before = link.routers[0].announces;

    link.up = true;
    let heal = clock.at(10_000);
    // Both keep their 1 s Adver_Timers; the next advert from either side settles it.
    link.run_until(heal + Duration::from_millis(1000));
    assert_eq!(link.states(), [State::Master, State::Backup]);
    assert_eq!(link.routers[0].announces, announces_before + 1);
    // And it stays settled.
    link.run_until(heal + Duration::from_secs(30));
    assert_eq!(link.states(), [State::Master, State::Backup]);
}

#[test]
fn pair_with_both_signals_failed_settles_without_flapping() {
    // Tracked signal (issue 6): when both routers' signals fail, the master gives up
    // once, the other takes over as last resort, and nothing flaps afterwards.
    let clock = Clock::new();
    let (a, b) = pair(200, 100, 10);
    let mut link = Link::new(a, b, ChecksumMode::PseudoHeader);
    for r in &mut link.routers {
        r.vrrp.handle_startup(clock.at(0));
    }
    link.settle(clock.at(0));
    link.run_until(clock.at(1000));
    link.routers[1].vrrp.set_fault(clock.at(1000), true);
    link.routers[0].vrrp.set_fault(clock.at(1000), true);
    link.settle(clock.at(1000));
    link.run_until(clock.at(2000));
    let settled = link.states();
    assert!(settled.contains(&State::Master) && settled.contains(&State::Backup));
    let masters: usize = link.routers.iter().map(|r| r.masters.len()).sum();
    link.run_until(clock.at(60_000));
    assert_eq!(link.states(), settled);
    let after: usize = link.routers.iter().map(|r| r.masters.len()).sum();
    assert_eq!(masters, after, "no transition in 58 s");
}

#[test]
fn pair_with_signals_failing_ms_apart_moves_the_vips_once() {
    // Tracked signals (issue 6), beyond RFC 9568: the master's signal fails, it gives up
    // and the backup takes over at once (single unicast peer); 5 ms later the new
    // master's own signal fails. The router that just gave up is no healthier, so the
    // new master keeps the VIPs (advertising its fault priority) instead of handing them
    // back: one move, not two. When the first router recovers it preempts.
    let clock = Clock::new();
    let (a, b) = pair(200, 100, 10);
    let mut link = Link::new(a, b, ChecksumMode::PseudoHeader);
    for r in &mut link.routers {
        r.vrrp.handle_startup(clock.at(0));
    }
    link.settle(clock.at(0));
    link.run_until(clock.at(1000));
    assert_eq!(link.states(), [State::Master, State::Backup]);
    link.routers[0].vrrp.set_fault(clock.at(1000), true);
    link.settle(clock.at(1000));
    assert_eq!(link.states(), [State::Backup, State::Master]);
    link.routers[1].vrrp.set_fault(clock.at(1005), true);
    link.settle(clock.at(1005));
    link.run_until(clock.at(10_000));
    assert_eq!(link.states(), [State::Backup, State::Master]);
    assert_eq!(
        link.routers[1].masters.len(),
        1,
        "node b became master once"
    );
    assert_eq!(
        link.routers[0].masters.len(),
        1,
        "node a never took the VIPs back"
    );
    assert_eq!(link.routers[1].vrrp.effective_priority(), 1);

    link.routers[0].vrrp.set_fault(clock.at(10_000), false);
    link.settle(clock.at(10_000));
    link.run_until(clock.at(11_000));
    assert_eq!(link.states(), [State::Master, State::Backup]);
}

#[test]
fn counters_track_traffic_and_transitions() {
    // The machine exposes counters for /metrics: sent, received, priority 0 both ways,
    // and transitions by target state.
    let clock = Clock::new();
    let (mut v, t) = master(config(100), &clock);
    v.handle_timeout(t + Duration::from_millis(1000));
    v.handle_advert(t, peer_high(), &advert(0, 100)).unwrap();
    v.handle_shutdown(t);
    let c = v.counters();
    assert_eq!(c.adverts_sent, 4); // became master, timer, answer to priority 0, shutdown
    assert_eq!(c.priority_zero_sent, 1);
    assert_eq!(c.adverts_received, 1);
    assert_eq!(c.priority_zero_received, 1);
    assert_eq!(
        (c.became_backup, c.became_master, c.became_initialize),
        (1, 1, 1)
    );
    assert_eq!(c.announces, 1);
}

// Proves the resume event (beyond RFC 9568, for an agent restart that keeps its VIPs):
// from Initialize the router sends its advert at once, is Master with its Adver_Timer
// armed and owns the addresses, but sends no announcement (nothing moved); and a
// higher-priority master then makes it Backup as RFC 9568 6.4.3 says for any master.
#[test]
fn resume_is_master_at_once_without_announcing() {
    let clock = Clock::new();
    let mut v = Vrrp::new(config(100), clock.at(0)).unwrap();
    v.handle_resume(clock.at(0));
    assert_eq!(
        drain(&mut v),
        vec![
            Action::SendAdvert { priority: 100 },
            Action::BecomeMaster {
                from: State::Initialize,
                reason: Reason::Resumed,
                accept_mode: false,
            },
        ]
    );
    assert_eq!(v.state(), State::Master);
    assert_eq!(v.poll_timeout(), Some(clock.at(1000)));
    assert_eq!(v.counters().announces, 0);
    // A second resume (or a startup) of a running router does nothing.
    v.handle_resume(clock.at(10));
    v.handle_startup(clock.at(10));
    assert!(drain(&mut v).is_empty());
    v.handle_advert(clock.at(20), peer_low(), &advert(200, 100))
        .unwrap();
    assert!(matches!(
        drain(&mut v).as_slice(),
        [
            Action::SendAdvert { priority: 100 },
            Action::BecomeBackup {
                reason: Reason::HigherPriority { priority: 200, .. },
                ..
            }
        ]
    ));
}
