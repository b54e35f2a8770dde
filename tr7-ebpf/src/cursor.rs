//! Bounds-checked access to packet bytes: the one place that turns an offset into a read.
//!
//! XDP reads the frame in place ([`Direct`]); TC copies through `bpf_skb_load_bytes`
//! ([`Skb`]), which also reaches headers outside the skb's linear area and keeps the
//! verifier's view simple. Parsers are generic over [`Bytes`], so both share one parser.

use core::mem::{MaybeUninit, size_of};

use aya_ebpf::{helpers::bpf_skb_load_bytes, programs::TcContext};

/// The frame is shorter than the header being read.
#[derive(Clone, Copy, Debug)]
pub struct Truncated;

pub trait Bytes {
    /// Reads a `T` at `offset`, or fails when the frame ends before `offset + size_of::<T>()`.
    fn read<T: Copy>(&self, offset: usize) -> Result<T, Truncated>;

    /// Frame length in bytes.
    fn len(&self) -> usize;

    /// Four bytes at `offset` as one word in memory order (`u32::from_ne_bytes`).
    #[inline(always)]
    fn word_at(&self, offset: usize) -> Result<u32, Truncated> {
        self.read::<[u8; 4]>(offset).map(u32::from_ne_bytes)
    }

    /// A 16-byte address at `offset` as four words.
    #[inline(always)]
    fn addr16_at(&self, offset: usize) -> Result<[u32; 4], Truncated> {
        Ok([
            self.word_at(offset)?,
            self.word_at(offset + 4)?,
            self.word_at(offset + 8)?,
            self.word_at(offset + 12)?,
        ])
    }

    /// A big-endian (network order) `u16` at `offset`.
    #[inline(always)]
    fn be16_at(&self, offset: usize) -> Result<u16, Truncated> {
        self.read::<[u8; 2]>(offset).map(u16::from_be_bytes)
    }
}

/// The bytes between XDP's `data` and `data_end`.
#[derive(Clone, Copy)]
pub struct Direct {
    start: usize,
    end: usize,
}

impl Direct {
    #[inline(always)]
    pub fn new(start: usize, end: usize) -> Self {
        Self { start, end }
    }
}

impl Direct {
    /// Writes `v` at `offset`, or fails when the frame ends before `offset + size_of::<T>()`.
    #[inline(always)]
    pub fn write<T: Copy>(&self, offset: usize, v: T) -> Result<(), Truncated> {
        let at = self.start + offset;
        if at + size_of::<T>() > self.end {
            return Err(Truncated);
        }
        // SAFETY: inside the frame, checked above; XDP frames are writable.
        unsafe { core::ptr::write_unaligned(at as *mut T, v) };
        Ok(())
    }
}

impl Bytes for Direct {
    #[inline(always)]
    fn read<T: Copy>(&self, offset: usize) -> Result<T, Truncated> {
        let at = self.start + offset;
        if at + size_of::<T>() > self.end {
            return Err(Truncated);
        }
        // SAFETY: `at..at + size_of::<T>()` lies inside the frame checked above; the read is
        // unaligned because headers sit at arbitrary offsets.
        Ok(unsafe { core::ptr::read_unaligned(at as *const T) })
    }

    #[inline(always)]
    fn len(&self) -> usize {
        self.end - self.start
    }
}

/// An skb read through `bpf_skb_load_bytes`.
pub struct Skb<'a> {
    ctx: &'a TcContext,
    len: usize,
}

impl<'a> Skb<'a> {
    #[inline(always)]
    pub fn new(ctx: &'a TcContext, len: u32) -> Self {
        Self {
            ctx,
            len: len as usize,
        }
    }
}

impl Bytes for Skb<'_> {
    #[inline(always)]
    fn read<T: Copy>(&self, offset: usize) -> Result<T, Truncated> {
        let mut out = MaybeUninit::<T>::uninit();
        // SAFETY: the helper writes exactly size_of::<T>() bytes into `out` or fails; `T` is
        // plain bytes (arrays of u8) in every use.
        let ret = unsafe {
            bpf_skb_load_bytes(
                self.ctx.skb.skb as *const _,
                offset as u32,
                out.as_mut_ptr() as *mut _,
                size_of::<T>() as u32,
            )
        };
        if ret < 0 {
            return Err(Truncated);
        }
        // SAFETY: initialised by the successful helper call above.
        Ok(unsafe { out.assume_init() })
    }

    #[inline(always)]
    fn len(&self) -> usize {
        self.len
    }
}
