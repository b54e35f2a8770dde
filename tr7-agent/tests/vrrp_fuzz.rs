//! Fuzz-style property tests: decoding never panics on any input, rejects every
//! truncation and every single-bit corruption of a valid advert, and round-trips every
//! valid one; the state machine never panics and keeps its invariants under any
//! sequence of events.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use tr7::vrrp::{Advertisement, ChecksumMode, Config, State, Transport, Vrrp, check_ip_header};

fn v4() -> impl Strategy<Value = IpAddr> {
    any::<u32>().prop_map(|n| IpAddr::V4(Ipv4Addr::from(n)))
}

fn v6() -> impl Strategy<Value = IpAddr> {
    any::<u128>().prop_map(|n| IpAddr::V6(Ipv6Addr::from(n)))
}

fn any_ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![v4(), v6()]
}

fn mode() -> impl Strategy<Value = ChecksumMode> {
    prop_oneof![
        Just(ChecksumMode::PseudoHeader),
        Just(ChecksumMode::MessageOnly)
    ]
}

/// A valid advertisement with IP endpoints of its family.
fn valid() -> impl Strategy<Value = (Advertisement, IpAddr, IpAddr)> {
    let fam4 = (prop::collection::vec(v4(), 1..=20), v4(), v4());
    let fam6 = (prop::collection::vec(v6(), 1..=20), v6(), v6());
    (1..=255u8, any::<u8>(), 1..=4095u16, prop_oneof![fam4, fam6]).prop_map(
        |(vrid, prio, interval, (addrs, src, dst))| {
            (
                Advertisement::new(vrid, prio, interval, addrs).unwrap(),
                src,
                dst,
            )
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn decode_never_panics_on_random_bytes(
        bytes in prop::collection::vec(any::<u8>(), 0..600),
        src in any_ip(),
        dst in any_ip(),
    ) {
        // Proves decode is total: any bytes and endpoints give Ok or Err, never a panic,
        // and whatever it accepts re-encodes to something it accepts again.
        if let Ok((adv, mode)) = Advertisement::decode(&bytes, src, dst) {
            let again = adv.encode(src, dst, mode).unwrap();
            prop_assert_eq!(Advertisement::decode(&again, src, dst).unwrap().0, adv);
        }
        for transport in [Transport::Multicast, Transport::Unicast] {
            let _ = check_ip_header(bytes.first().copied().unwrap_or(0), 112, src, dst, transport);
        }
    }

    #[test]
    fn decode_of_random_header_with_valid_checksum_never_panics(
        header in prop::array::uniform8(any::<u8>()),
        body in prop::collection::vec(any::<u8>(), 0..100),
        src in v4(),
        dst in v4(),
    ) {
        // Proves the paths behind the checksum (count, VRID, interval, addresses) are
        // reached and total: random bytes rarely pass a checksum, so these are made to
        // pass it (message-only) before decoding.
        let mut b = header.to_vec();
        b.extend_from_slice(&body);
        b[0] = 0x31;
        b[6] = 0;
        b[7] = 0;
        let sum = tr7::vrrp::checksum::compute(&b, src, dst, ChecksumMode::MessageOnly).unwrap();
        b[6..8].copy_from_slice(&sum.to_be_bytes());
        let _ = Advertisement::decode(&b, src, dst);
    }

    #[test]
    fn round_trip((adv, src, dst) in valid(), mode in mode()) {
        // Proves every valid advert decodes to itself, with the checksum mode it was
        // sent with (IPv6 always reports the pseudo-header).
        let bytes = adv.encode(src, dst, mode).unwrap();
        prop_assert_eq!(bytes.len(), adv.encoded_len());
        let (back, got) = Advertisement::decode(&bytes, src, dst).unwrap();
        prop_assert_eq!(&back, &adv);
        if matches!(src, IpAddr::V6(_)) {
            prop_assert_eq!(got, ChecksumMode::PseudoHeader);
        } else if got != mode {
            // Both sums can coincide only when the pseudo-header sums to zero
            // (one's complement), which decode resolves as PseudoHeader.
            prop_assert_eq!(got, ChecksumMode::PseudoHeader);
            prop_assert!(tr7::vrrp::checksum::verify(&bytes, src, dst, ChecksumMode::MessageOnly));
        }
    }

    #[test]
    fn every_truncation_is_rejected((adv, src, dst) in valid(), mode in mode()) {
        // Proves no prefix or extension of a valid advert is accepted (RFC 9568 7.1
        // length checks), and none panics.
        let bytes = adv.encode(src, dst, mode).unwrap();
        for len in 0..bytes.len() {
            prop_assert!(Advertisement::decode(&bytes[..len], src, dst).is_err());
        }
        let mut longer = bytes.to_vec();
        longer.push(0);
        prop_assert!(Advertisement::decode(&longer, src, dst).is_err());
    }

    #[test]
    fn every_single_bit_flip_is_rejected(
        (adv, src, dst) in valid(),
        mode in mode(),
        pos in any::<prop::sample::Index>(),
        bit in 0..8u8,
    ) {
        // Proves the Internet checksum catches any one flipped bit anywhere in the
        // message (RFC 1071) under the checksum it was sent with. The one way through
        // is the price of accepting both IPv4 checksums: a flip of +-2^k that equals
        // the pseudo-header's sum passes as the other mode (about 32 in 65535 source
        // and destination pairs); then decode must say so, so the shell can count it.
        let mut bytes = adv.encode(src, dst, mode).unwrap().to_vec();
        let i = pos.index(bytes.len());
        bytes[i] ^= 1 << bit;
        match Advertisement::decode(&bytes, src, dst) {
            Err(_) => {}
            Ok((_, got)) => {
                prop_assert!(matches!(src, IpAddr::V4(_)));
                prop_assert_ne!(got, mode);
            }
        }
    }

    #[test]
    fn multi_bit_flips_never_panic(
        (adv, src, dst) in valid(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), 0..8u8), 1..8),
    ) {
        // Proves decode stays total on corrupted valid adverts.
        let mut bytes = adv.encode(src, dst, ChecksumMode::PseudoHeader).unwrap().to_vec();
        for (pos, bit) in flips {
            let i = pos.index(bytes.len());
            bytes[i] ^= 1 << bit;
        }
        let _ = Advertisement::decode(&bytes, src, dst);
    }
}

#[derive(Debug, Clone)]
enum Event {
    Startup,
    Shutdown,
    Timeout,
    Advert {
        from: u8,
        priority: u8,
        interval_cs: u16,
    },
    Fault(bool),
    Priority(u8),
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        1 => Just(Event::Startup),
        1 => Just(Event::Shutdown),
        6 => Just(Event::Timeout),
        8 => (0..4u8, any::<u8>(), 1..=4095u16)
            .prop_map(|(from, priority, interval_cs)| Event::Advert { from, priority, interval_cs }),
        1 => any::<bool>().prop_map(Event::Fault),
        1 => any::<u8>().prop_map(Event::Priority),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn state_machine_invariants(
        priority in 1..=255u8,
        preempt in any::<bool>(),
        delay_ms in prop_oneof![Just(0u64), 0..5000u64],
        unicast in any::<bool>(),
        steps in prop::collection::vec((event(), 0..3000u64), 1..200),
    ) {
        // Proves, under any sequence of events and time steps: no panic; Initialize has
        // no timer and Backup/Master always have one in the future or now; a master is
        // never behind on its timer by more than one interval; priority 0 goes out only
        // from a master giving up or shutting down.
        let me = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 5));
        let vips = vec![IpAddr::V4(Ipv4Addr::new(192, 0, 2, 100))];
        let peers: Vec<IpAddr> = (1..=3u8).map(|i| IpAddr::V4(Ipv4Addr::new(192, 0, 2, i * 3))).collect();
        let mut cfg = Config::new(9, priority, me, vips.clone());
        cfg.preempt = preempt;
        cfg.preempt_delay = Duration::from_millis(delay_ms);
        if unicast {
            cfg.unicast_peers = peers[..1].to_vec();
        }
        let mut now = Instant::now();
        let mut v = Vrrp::new(cfg, now).unwrap();
        for (ev, dt) in steps {
            now += Duration::from_millis(dt);
            let before = v.state();
            match ev {
                Event::Startup => v.handle_startup(now),
                Event::Shutdown => v.handle_shutdown(now),
                Event::Timeout => {
                    if let Some(t) = v.poll_timeout() {
                        now = now.max(t);
                    }
                    v.handle_timeout(now);
                }
                Event::Advert { from, priority, interval_cs } => {
                    let src = if from == 0 { me } else { peers[usize::from(from - 1)] };
                    let adv = Advertisement::new(9, priority, interval_cs, vips.clone()).unwrap();
                    let _ = v.handle_advert(now, src, &adv);
                }
                Event::Fault(f) => v.set_fault(now, f),
                Event::Priority(p) => {
                    prop_assert_eq!(v.set_priority(now, p).is_err(), p == 0);
                }
            }
            let mut gave_up = false;
            while let Some(a) = v.poll_action() {
                if let tr7::vrrp::Action::SendAdvert { priority: 0 } = a {
                    gave_up = true;
                }
            }
            if gave_up {
                prop_assert_eq!(before, State::Master);
                prop_assert_ne!(v.state(), State::Master);
            }
            match v.state() {
                State::Initialize => prop_assert_eq!(v.poll_timeout(), None),
                State::Backup => prop_assert!(v.poll_timeout().is_some()),
                State::Master => {
                    let t = v.poll_timeout().unwrap();
                    prop_assert!(t <= now + Duration::from_millis(u64::from(v.config().advert_interval_cs) * 10));
                }
            }
        }
    }
}
