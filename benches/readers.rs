//! Parse rate per reader (records/s) on synthetic inputs built in memory: flow-tools (plain and zlib),
//! raw NetFlow v5 and IPFIX payloads, a pcap of v5 exporter traffic, and nfdump CSV.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use flowsketch::formats::{self, decode_all, Bytes, Opener};
use std::io::Write;

const FLOWS: usize = 60_000;

/// A deterministic pseudo-random stream for field values.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 as u32
    }
}

fn flowtools(compress: bool) -> Vec<u8> {
    let mut tlv = Vec::new();
    for (t, v) in [
        (0x2u16, 5u16.to_le_bytes().to_vec()),
        (
            0x8,
            (if compress { 2u32 } else { 0 }).to_le_bytes().to_vec(),
        ),
    ] {
        tlv.extend_from_slice(&t.to_le_bytes());
        tlv.extend_from_slice(&(v.len() as u16).to_le_bytes());
        tlv.extend_from_slice(&v);
    }
    let mut out = vec![0xCF, 0x10, 1, 3];
    out.extend_from_slice(&((8 + tlv.len()) as u32).to_le_bytes());
    out.extend_from_slice(&tlv);
    let mut body = Vec::with_capacity(FLOWS * 64);
    let mut rng = Rng(7);
    for _ in 0..FLOWS {
        let mut r = [0u8; 64];
        r[0..4].copy_from_slice(&1_600_000_000u32.to_le_bytes());
        r[8..12].copy_from_slice(&100_000u32.to_le_bytes());
        r[16..20].copy_from_slice(&(0x0a00_0000 | (rng.next() & 0xffff)).to_le_bytes());
        r[20..24].copy_from_slice(&rng.next().to_le_bytes());
        r[32..36].copy_from_slice(&(rng.next() % 100).to_le_bytes());
        r[36..40].copy_from_slice(&(rng.next() % 100_000).to_le_bytes());
        r[40..44].copy_from_slice(&90_000u32.to_le_bytes());
        r[44..48].copy_from_slice(&95_000u32.to_le_bytes());
        r[48..50].copy_from_slice(&(rng.next() as u16).to_le_bytes());
        r[50..52].copy_from_slice(&80u16.to_le_bytes());
        r[52] = 6;
        r[54] = 0x12;
        body.extend_from_slice(&r);
    }
    if compress {
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(&body).unwrap();
        body = z.finish().unwrap();
    }
    out.extend_from_slice(&body);
    out
}

/// One v5 packet of up to 30 records.
fn v5_packet(rng: &mut Rng, count: usize) -> Vec<u8> {
    let mut p = Vec::with_capacity(24 + 48 * count);
    p.extend_from_slice(&5u16.to_be_bytes());
    p.extend_from_slice(&(count as u16).to_be_bytes());
    p.extend_from_slice(&100_000u32.to_be_bytes());
    p.extend_from_slice(&1_600_000_000u32.to_be_bytes());
    p.extend_from_slice(&[0; 12]);
    for _ in 0..count {
        let mut r = [0u8; 48];
        r[0..4].copy_from_slice(&(0x0a00_0000 | (rng.next() & 0xffff)).to_be_bytes());
        r[4..8].copy_from_slice(&rng.next().to_be_bytes());
        r[16..20].copy_from_slice(&(rng.next() % 100).to_be_bytes());
        r[20..24].copy_from_slice(&(rng.next() % 100_000).to_be_bytes());
        r[24..28].copy_from_slice(&90_000u32.to_be_bytes());
        r[28..32].copy_from_slice(&95_000u32.to_be_bytes());
        r[34..36].copy_from_slice(&443u16.to_be_bytes());
        r[38] = 6;
        p.extend_from_slice(&r);
    }
    p
}

fn v5_payloads() -> Vec<u8> {
    let mut rng = Rng(11);
    let mut out = Vec::new();
    for _ in 0..FLOWS / 30 {
        out.extend_from_slice(&v5_packet(&mut rng, 30));
    }
    out
}

/// IPFIX messages: a template, then data sets of 40 records each.
fn ipfix_payloads() -> Vec<u8> {
    // (id, length): src, dst, sport, dport, proto, flags, octets, packets, start ms, end ms.
    let fields: [(u16, u16); 10] = [
        (8, 4),
        (12, 4),
        (7, 2),
        (11, 2),
        (4, 1),
        (6, 1),
        (1, 8),
        (2, 8),
        (152, 8),
        (153, 8),
    ];
    let rec_len: usize = fields.iter().map(|f| f.1 as usize).sum();
    let msg = |sets: &[u8]| {
        let mut m = Vec::new();
        m.extend_from_slice(&10u16.to_be_bytes());
        m.extend_from_slice(&((16 + sets.len()) as u16).to_be_bytes());
        m.extend_from_slice(&1_600_000_000u32.to_be_bytes());
        m.extend_from_slice(&[0; 8]);
        m.extend_from_slice(sets);
        m
    };
    let mut tpl = Vec::new();
    tpl.extend_from_slice(&2u16.to_be_bytes());
    tpl.extend_from_slice(&((8 + 4 * fields.len()) as u16).to_be_bytes());
    tpl.extend_from_slice(&256u16.to_be_bytes());
    tpl.extend_from_slice(&(fields.len() as u16).to_be_bytes());
    for (id, len) in fields {
        tpl.extend_from_slice(&id.to_be_bytes());
        tpl.extend_from_slice(&len.to_be_bytes());
    }
    let mut out = msg(&tpl);
    let mut rng = Rng(13);
    for _ in 0..FLOWS / 40 {
        let mut set = Vec::new();
        set.extend_from_slice(&256u16.to_be_bytes());
        set.extend_from_slice(&((4 + 40 * rec_len) as u16).to_be_bytes());
        for _ in 0..40 {
            set.extend_from_slice(&(0x0a00_0000 | (rng.next() & 0xffff)).to_be_bytes());
            set.extend_from_slice(&rng.next().to_be_bytes());
            set.extend_from_slice(&(rng.next() as u16).to_be_bytes());
            set.extend_from_slice(&443u16.to_be_bytes());
            set.extend_from_slice(&[6, 0x12]);
            set.extend_from_slice(&(rng.next() as u64 % 100_000).to_be_bytes());
            set.extend_from_slice(&(rng.next() as u64 % 100).to_be_bytes());
            set.extend_from_slice(&1_599_999_990_000u64.to_be_bytes());
            set.extend_from_slice(&1_599_999_995_000u64.to_be_bytes());
        }
        out.extend_from_slice(&msg(&set));
    }
    out
}

fn pcap_of_v5() -> Vec<u8> {
    let mut rng = Rng(17);
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2c3d4u32.to_le_bytes());
    out.extend_from_slice(&[2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    out.extend_from_slice(&65535u32.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    for _ in 0..FLOWS / 30 {
        let p = v5_packet(&mut rng, 30);
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x08, 0x00, 0x45, 0]);
        f.extend_from_slice(&((28 + p.len()) as u16).to_be_bytes());
        f.extend_from_slice(&[0, 0, 0x40, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
        f.extend_from_slice(&[0x08, 0x07, 0x08, 0x07]);
        f.extend_from_slice(&((8 + p.len()) as u16).to_be_bytes());
        f.extend_from_slice(&[0, 0]);
        f.extend_from_slice(&p);
        out.extend_from_slice(&[0; 8]);
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(&f);
    }
    out
}

fn nfdump_csv() -> Vec<u8> {
    let mut rng = Rng(19);
    let mut s = String::from("ts,te,td,sa,da,sp,dp,pr,flg,fwd,stos,ipkt,ibyt,opkt,obyt,in,out\n");
    for _ in 0..FLOWS {
        let a = rng.next();
        s.push_str(&format!(
            "2023-01-25 18:35:43,2023-01-25 18:35:44,1.000,10.0.{}.{},{}.{}.{}.{},{},443,TCP,...AP.S.,0,0,{},{},0,0,1,2\n",
            a & 0xff,
            (a >> 8) & 0xff,
            a >> 24,
            (a >> 16) & 0xff,
            (a >> 8) & 0xff,
            a & 0xff,
            rng.next() as u16,
            rng.next() % 100,
            rng.next() % 100_000
        ));
    }
    s.push_str("Summary\nflows,bytes\n1,2\n");
    s.into_bytes()
}

fn bench(c: &mut Criterion) {
    let inputs: Vec<(&str, &str, Vec<u8>)> = vec![
        ("flowtools", "flowtools", flowtools(false)),
        ("flowtools-zlib", "flowtools", flowtools(true)),
        ("netflow-v5", "netflow", v5_payloads()),
        ("ipfix", "netflow", ipfix_payloads()),
        ("pcap-v5", "pcap", pcap_of_v5()),
        ("csv-nfdump", "csv", nfdump_csv()),
    ];
    let mut g = c.benchmark_group("readers");
    for (name, fmt, bytes) in inputs {
        let shared: Bytes = formats::bytes_from_vec(bytes);
        // Count once so the throughput is the reader's own figure.
        let d = Opener::new().open(shared.clone(), name, Some(fmt)).unwrap();
        let mut n = 0u64;
        decode_all(d.as_ref(), &mut |b| n += b.len() as u64).unwrap();
        assert!(n as usize >= FLOWS - 40, "{name}: {n} flows");
        g.throughput(Throughput::Elements(n));
        // Open (header, template and packet scan) plus decode: what one input costs.
        g.bench_function(name, |b| {
            b.iter(|| {
                let d = Opener::new().open(shared.clone(), name, Some(fmt)).unwrap();
                let mut n = 0u64;
                decode_all(d.as_ref(), &mut |b| n += b.len() as u64).unwrap();
                n
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
