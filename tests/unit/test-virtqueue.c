/* Unit tests for the split-virtqueue walker: address translation, chains
 * (direct, indirect, malformed), used ring updates and EVENT_IDX. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test.h"
#include "transport/virtqueue.h"

#define GPA 0x100000ull
#define UVA 0x7f0000000000ull
#define MEMSZ (1u << 20)
#define NUM 16u
#define DESC (GPA + 0x0)
#define AVAIL (GPA + 0x1000)
#define USED (GPA + 0x2000)
#define DATA (GPA + 0x10000)

static uint8_t *guest;
static struct vu_mem mem;
static struct vq q;

static void *at(uint64_t gpa) {
        return guest + (gpa - GPA);
}

static void setup(bool indirect, bool event_idx) {
        if (!guest)
                guest = aligned_alloc(4096, MEMSZ);
        CHECK(guest);
        memset(guest, 0, MEMSZ);
        mem = (struct vu_mem){ .nregions = 1,
                               .regions = { { .gpa = GPA, .size = MEMSZ, .uva = UVA, .host = guest } } };
        memset(&q, 0, sizeof(q));
        q.indirect = indirect;
        q.event_idx = event_idx;
        CHECK_OK(vq_map(&q, &mem, NUM, UVA + (DESC - GPA), UVA + (AVAIL - GPA), UVA + (USED - GPA)));
}

static void set_desc(uint64_t table, unsigned i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next) {
        struct vq_desc d = { .addr = addr, .len = len, .flags = flags, .next = next };
        memcpy(at(table + 16 * i), &d, sizeof(d));
}

static void offer(uint16_t head) {
        uint16_t *avail = at(AVAIL);
        avail[2 + (avail[1] % NUM)] = head;
        avail[1]++;
}

static uint16_t used_idx(void) {
        return ((uint16_t *) at(USED))[1];
}

static struct vq_used_elem used_elem(unsigned i) {
        struct vq_used_elem e;
        memcpy(&e, (uint8_t *) at(USED) + 4 + 8 * (i % NUM), sizeof(e));
        return e;
}

static void test_translate(void) {
        struct iovec iov[4];
        uint8_t a[64], b[64];
        struct vu_mem m = { .nregions = 2,
                            .regions = { { .gpa = 0x1000, .size = 64, .uva = 0x9000, .host = a },
                                         { .gpa = 0x1040, .size = 64, .uva = 0xa000, .host = b } } };

        CHECK(vu_mem_gpa(&m, 0x1000, 64) == a);
        CHECK(vu_mem_gpa(&m, 0x1001, 64) == NULL); /* crosses into region 2 */
        CHECK(vu_mem_gpa(&m, 0x1040, 64) == b);
        CHECK(vu_mem_gpa(&m, 0x1080, 1) == NULL);
        CHECK(vu_mem_gpa(&m, 0xfff, 2) == NULL);
        CHECK(vu_mem_gpa(&m, 0x1010, UINT64_MAX) == NULL); /* length overflow */
        CHECK(vu_mem_gpa(&m, UINT64_MAX, 2) == NULL);
        CHECK(vu_mem_uva(&m, 0xa03f, 1) == b + 63);
        CHECK(vu_mem_uva(&m, 0xa03f, 2) == NULL);

        /* a range over two adjacent regions becomes two segments */
        CHECK_EQ(vu_mem_gpa_iov(&m, 0x1030, 0x20, iov, 4), 2);
        CHECK(iov[0].iov_base == a + 0x30 && iov[0].iov_len == 0x10);
        CHECK(iov[1].iov_base == b && iov[1].iov_len == 0x10);
        CHECK_EQ(vu_mem_gpa_iov(&m, 0x1030, 0x20, iov, 1), -E2BIG);
        CHECK_EQ(vu_mem_gpa_iov(&m, 0x1030, 0x60, iov, 4), -EFAULT);
        CHECK_EQ(vu_mem_gpa_iov(&m, 0x1030, 0, iov, 4), 0);
        CHECK_EQ(vu_mem_gpa_iov(&m, UINT64_MAX - 4, 16, iov, 4), -EFAULT);
}

static void test_map(void) {
        setup(false, false);
        struct vq t = {};
        CHECK_EQ(vq_map(&t, &mem, 12, UVA, UVA + 0x1000, UVA + 0x2000), -EINVAL);
        CHECK_EQ(vq_map(&t, &mem, 2048, UVA, UVA + 0x1000, UVA + 0x2000), -EINVAL);
        CHECK_EQ(vq_map(&t, &mem, 0, UVA, UVA + 0x1000, UVA + 0x2000), -EINVAL);
        CHECK_EQ(vq_map(&t, &mem, 16, UVA + 8, UVA + 0x1000, UVA + 0x2000), -EFAULT);
        CHECK_EQ(vq_map(&t, &mem, 16, UVA, UVA + 0x1001, UVA + 0x2000), -EFAULT);
        CHECK_EQ(vq_map(&t, &mem, 16, UVA, UVA + 0x1000, UVA + 0x2002), -EFAULT);
        /* used ring hanging off the end of guest memory */
        CHECK_EQ(vq_map(&t, &mem, 16, UVA, UVA + 0x1000, UVA + MEMSZ - 64), -EFAULT);
        CHECK_EQ(vq_map(&t, &mem, 16, UVA - 0x1000, UVA + 0x1000, UVA + 0x2000), -EFAULT);
        CHECK_OK(vq_map(&t, &mem, 1024, UVA, UVA + 0x4000, UVA + 0x8000));
        /* aligned guest addresses onto a misaligned host mapping (a region
         * whose mmap_offset is odd): refused, never accessed */
        struct vu_mem odd = mem;
        odd.regions[0].host = guest + 1;
        odd.regions[0].size = MEMSZ - 1;
        CHECK_EQ(vq_map(&t, &odd, 16, UVA, UVA + 0x1000, UVA + 0x2000), -EFAULT);
        odd.regions[0].host = guest + 4;
        CHECK_EQ(vq_map(&t, &odd, 16, UVA, UVA + 0x1000, UVA + 0x2000), -EFAULT); /* desc needs 16 */
        odd.regions[0].host = guest + 16;
        CHECK_OK(vq_map(&t, &odd, 16, UVA, UVA + 0x1000, UVA + 0x2000));
}

static void test_simple_chain(void) {
        static struct vq_elem e;
        struct vq_writer w;
        char buf[64];

        setup(false, false);
        memcpy(at(DATA), "hello ", 6);
        memcpy(at(DATA + 0x100), "world", 5);
        set_desc(DESC, 3, DATA, 6, VQ_DESC_F_NEXT, 7);
        set_desc(DESC, 7, DATA + 0x100, 5, VQ_DESC_F_NEXT, 1);
        set_desc(DESC, 1, DATA + 0x200, 8, VQ_DESC_F_WRITE | VQ_DESC_F_NEXT, 2);
        set_desc(DESC, 2, DATA + 0x300, 8, VQ_DESC_F_WRITE, 0);
        CHECK_EQ(vq_pop(&q, &e), 0);
        offer(3);
        CHECK_EQ(vq_pop(&q, &e), 1);
        CHECK_EQ(e.head, 3);
        CHECK_EQ(e.out_num, 2);
        CHECK_EQ(e.in_num, 2);
        CHECK_EQ(e.out_len, 11);
        CHECK_EQ(e.in_len, 16);
        CHECK(e.mem == &mem);
        CHECK_EQ(vq_elem_read(&e, buf, sizeof(buf)), 11);
        CHECK(memcmp(buf, "hello world", 11) == 0);
        CHECK_EQ(vq_elem_read(&e, buf, 4), 4);

        vq_writer_init(&w, &e);
        CHECK_EQ(vq_writer_space(&w), 16);
        CHECK_OK(vq_writer_put(&w, "0123456789", 10));
        CHECK_EQ(vq_writer_put(&w, "abcdefg", 7), -ENOSPC);
        CHECK_OK(vq_writer_put(&w, "ABCDEF", 6));
        CHECK_EQ(vq_writer_space(&w), 0);
        CHECK(memcmp(at(DATA + 0x200), "01234567", 8) == 0);
        CHECK(memcmp(at(DATA + 0x300), "89ABCDEF", 8) == 0);

        vq_push(&q, e.head, 16);
        CHECK_EQ(used_idx(), 1);
        CHECK_EQ(used_elem(0).id, 3);
        CHECK_EQ(used_elem(0).len, 16);
        CHECK(vq_should_notify(&q));
        ((uint16_t *) at(AVAIL))[0] = VQ_AVAIL_F_NO_INTERRUPT;
        CHECK(!vq_should_notify(&q));
        CHECK_EQ(vq_pop(&q, &e), 0);
}

/* The writer spreads data over writable segments, stepping over empty
 * ones, and refuses what does not fit without writing any of it. */
static void test_writer_segments(void) {
        static struct vq_elem e;
        struct vq_writer w;
        uint8_t data[106];

        setup(false, false);
        set_desc(DESC, 0, DATA, 16, VQ_DESC_F_NEXT, 1);
        set_desc(DESC, 1, DATA + 0x100, 0, VQ_DESC_F_WRITE | VQ_DESC_F_NEXT, 2); /* empty */
        set_desc(DESC, 2, DATA + 0x200, 10, VQ_DESC_F_WRITE | VQ_DESC_F_NEXT, 3);
        set_desc(DESC, 3, DATA + 0x300, 100, VQ_DESC_F_WRITE, 0);
        offer(0);
        CHECK_EQ(vq_pop(&q, &e), 1);
        CHECK_EQ(e.in_num, 2);
        vq_writer_init(&w, &e);
        for (size_t i = 0; i < sizeof(data); i++)
                data[i] = (uint8_t) (i + 1);
        memset(at(DATA + 0x200), 0, 10);
        memset(at(DATA + 0x300), 0, 100);
        CHECK_EQ(vq_writer_space(&w), 110);
        CHECK_OK(vq_writer_put(&w, "0123", 4));
        CHECK_OK(vq_writer_put(&w, data, 50));
        CHECK(memcmp(at(DATA + 0x200), "0123", 4) == 0);
        CHECK(memcmp(at(DATA + 0x204), data, 6) == 0);
        CHECK(memcmp(at(DATA + 0x300), data + 6, 44) == 0);
        CHECK_EQ(vq_writer_space(&w), 56);
        CHECK_EQ(vq_writer_put(&w, data, 57), -ENOSPC);
        CHECK_EQ(vq_writer_space(&w), 56);
        CHECK(((uint8_t *) at(DATA + 0x300))[44] == 0); /* nothing written */
        CHECK_OK(vq_writer_put(&w, data + 50, 56));
        CHECK(memcmp(at(DATA + 0x32c), data + 50, 56) == 0);
        CHECK_EQ(vq_writer_space(&w), 0);
        CHECK_EQ(w.done, 110);
}

static void test_indirect(void) {
        static struct vq_elem e;
        const uint64_t table = DATA + 0x1000;

        setup(true, false);
        set_desc(table, 0, DATA, 40, VQ_DESC_F_NEXT, 2);
        set_desc(table, 2, DATA + 0x100, 16, VQ_DESC_F_WRITE | VQ_DESC_F_NEXT, 1);
        set_desc(table, 1, DATA + 0x200, 4096, VQ_DESC_F_WRITE, 0);
        /* the WRITE flag on the indirect descriptor itself is ignored */
        set_desc(DESC, 5, table, 3 * 16, VQ_DESC_F_INDIRECT | VQ_DESC_F_WRITE, 0);
        offer(5);
        CHECK_EQ(vq_pop(&q, &e), 1);
        CHECK_EQ(e.head, 5);
        CHECK_EQ(e.out_num, 1);
        CHECK_EQ(e.in_num, 2);
        CHECK_EQ(e.in_len, 4096 + 16);

        /* a direct descriptor chained into an indirect table */
        set_desc(DESC, 6, DATA + 0x5000, 8, VQ_DESC_F_NEXT, 9);
        set_desc(DESC, 9, table, 3 * 16, VQ_DESC_F_INDIRECT, 0);
        offer(6);
        CHECK_EQ(vq_pop(&q, &e), 1);
        CHECK_EQ(e.out_num, 2);
        CHECK_EQ(e.out_len, 48);
}

static void expect_bad_chain(uint16_t head) {
        static struct vq_elem e;
        uint16_t before = used_idx();
        offer(head);
        CHECK_EQ(vq_pop(&q, &e), -EPROTO);
        CHECK_EQ(e.head, head);
        CHECK_EQ(e.in_len, 0);
        CHECK(!q.broken);
        vq_push(&q, e.head, 0);
        CHECK_EQ(used_idx(), (uint16_t) (before + 1));
}

static void test_bad_chains(void) {
        const uint64_t table = DATA + 0x1000;

        setup(true, false);
        /* loop */
        set_desc(DESC, 0, DATA, 8, VQ_DESC_F_NEXT, 1);
        set_desc(DESC, 1, DATA, 8, VQ_DESC_F_NEXT, 0);
        expect_bad_chain(0);
        /* self loop */
        set_desc(DESC, 2, DATA, 8, VQ_DESC_F_NEXT, 2);
        expect_bad_chain(2);
        /* next out of range */
        set_desc(DESC, 3, DATA, 8, VQ_DESC_F_NEXT, NUM);
        expect_bad_chain(3);
        /* readable after writable */
        set_desc(DESC, 4, DATA, 8, VQ_DESC_F_WRITE | VQ_DESC_F_NEXT, 5);
        set_desc(DESC, 5, DATA, 8, 0, 0);
        expect_bad_chain(4);
        /* buffer outside guest memory, and straddling its end */
        set_desc(DESC, 6, GPA + MEMSZ, 1, 0, 0);
        expect_bad_chain(6);
        set_desc(DESC, 6, GPA + MEMSZ - 4, 8, 0, 0);
        expect_bad_chain(6);
        set_desc(DESC, 6, UINT64_MAX - 2, 8, 0, 0);
        expect_bad_chain(6);
        /* indirect: bad sizes, outside memory, nested, with NEXT */
        set_desc(DESC, 7, table, 24, VQ_DESC_F_INDIRECT, 0);
        expect_bad_chain(7);
        set_desc(DESC, 7, table, 0, VQ_DESC_F_INDIRECT, 0);
        expect_bad_chain(7);
        set_desc(DESC, 7, table, 16 * (VQ_MAX_SIZE + 1), VQ_DESC_F_INDIRECT, 0);
        expect_bad_chain(7);
        set_desc(DESC, 7, GPA + MEMSZ - 16, 32, VQ_DESC_F_INDIRECT, 0);
        expect_bad_chain(7);
        set_desc(table, 0, table, 32, VQ_DESC_F_INDIRECT, 0);
        set_desc(DESC, 7, table, 32, VQ_DESC_F_INDIRECT, 0);
        expect_bad_chain(7);
        set_desc(table, 0, DATA, 8, 0, 0);
        set_desc(DESC, 7, table, 16, VQ_DESC_F_INDIRECT | VQ_DESC_F_NEXT, 8);
        expect_bad_chain(7);
        /* loop inside an indirect table, NEXT beyond its end */
        set_desc(table, 0, DATA, 8, VQ_DESC_F_NEXT, 1);
        set_desc(table, 1, DATA, 8, VQ_DESC_F_NEXT, 0);
        set_desc(DESC, 8, table, 32, VQ_DESC_F_INDIRECT, 0);
        expect_bad_chain(8);
        set_desc(table, 1, DATA, 8, VQ_DESC_F_NEXT, 2);
        expect_bad_chain(8);
        /* total length above the bound */
        set_desc(DESC, 9, DATA, 0x80000, VQ_DESC_F_WRITE | VQ_DESC_F_NEXT, 10);
        for (unsigned i = 0; i < 8; i++)
                set_desc(table, i, DATA, 0x80000, VQ_DESC_F_WRITE | VQ_DESC_F_NEXT, i + 1);
        set_desc(table, 8, DATA, 0x80000, VQ_DESC_F_WRITE, 0);
        set_desc(DESC, 10, table, 16 * 9, VQ_DESC_F_INDIRECT, 0);
        static struct vq_elem e;
        offer(9);
        CHECK_EQ(vq_pop(&q, &e), 1); /* 5 MiB is fine */
        for (unsigned i = 0; i < 8; i++)
                set_desc(table, i, DATA, 0xf0000, VQ_DESC_F_WRITE | VQ_DESC_F_NEXT, i + 1);
        set_desc(DESC, 11, table, 16 * 9, VQ_DESC_F_INDIRECT, 0);
        set_desc(table, 8, DATA, 0xf0000, VQ_DESC_F_WRITE, 0);
        offer(11);
        CHECK_EQ(vq_pop(&q, &e), 1); /* 8.4 MiB, still fine */

        /* indirect without the feature */
        setup(false, false);
        set_desc(table, 0, DATA, 8, 0, 0);
        set_desc(DESC, 0, table, 16, VQ_DESC_F_INDIRECT, 0);
        expect_bad_chain(0);
}

static void test_too_long(void) {
        static struct vq_elem e;
        const uint64_t table = DATA + 0x1000;

        /* an indirect table of 1024 descriptors each 128 KiB: 128 MiB */
        setup(true, false);
        for (unsigned i = 0; i < 1024; i++)
                set_desc(table, i, DATA, 0x20000, VQ_DESC_F_WRITE | (i < 1023 ? VQ_DESC_F_NEXT : 0), i + 1);
        set_desc(DESC, 0, table, 16 * 1024, VQ_DESC_F_INDIRECT, 0);
        offer(0);
        CHECK_EQ(vq_pop(&q, &e), -EPROTO);
}

static void test_broken_ring(void) {
        static struct vq_elem e;

        setup(false, false);
        set_desc(DESC, 0, DATA, 8, 0, 0);
        ((uint16_t *) at(AVAIL))[1] = NUM + 1; /* claims 17 new entries in a 16-entry ring */
        CHECK_EQ(vq_pop(&q, &e), -EIO);
        CHECK(q.broken);
        CHECK_EQ(vq_pop(&q, &e), -EIO);
        vq_push(&q, 0, 0);
        CHECK_EQ(used_idx(), 0);

        setup(false, false);
        offer(NUM); /* head out of range */
        CHECK_EQ(vq_pop(&q, &e), -EIO);
        CHECK(q.broken);
        CHECK(!vq_should_notify(&q));
}

static void test_wraparound(void) {
        static struct vq_elem e;

        setup(false, true);
        q.last_avail_idx = 0xfffe;
        ((uint16_t *) at(AVAIL))[1] = 0xfffe;
        set_desc(DESC, 0, DATA, 8, VQ_DESC_F_WRITE, 0);
        for (unsigned i = 0; i < 4; i++) {
                offer(0);
                CHECK_EQ(vq_pop(&q, &e), 1);
                vq_push(&q, 0, 8);
        }
        CHECK_EQ(q.last_avail_idx, 2);
        CHECK_EQ(vq_pop(&q, &e), 0);
}

static void test_event_idx(void) {
        static struct vq_elem e;
        uint16_t *avail = NULL;

        setup(false, true);
        avail = at(AVAIL);
        set_desc(DESC, 0, DATA, 8, VQ_DESC_F_WRITE, 0);
        offer(0);
        CHECK_EQ(vq_pop(&q, &e), 1);
        vq_push(&q, 0, 0);
        CHECK(vq_should_notify(&q)); /* first notification always */
        /* driver asks for an interrupt once used idx passes 3 */
        avail[2 + NUM] = 3;
        for (unsigned i = 0; i < 3; i++) {
                offer(0);
                CHECK_EQ(vq_pop(&q, &e), 1);
                vq_push(&q, 0, 0);
                /* used_idx is now 2, 3, 4: notify only when crossing 3 -> 4 */
                CHECK(vq_should_notify(&q) == (i == 2));
        }
        /* NO_INTERRUPT is ignored with EVENT_IDX */
        avail[0] = VQ_AVAIL_F_NO_INTERRUPT;
        avail[2 + NUM] = 4;
        offer(0);
        CHECK_EQ(vq_pop(&q, &e), 1);
        vq_push(&q, 0, 0);
        CHECK(vq_should_notify(&q));

        /* avail_event tells the driver where to kick next */
        CHECK(!vq_enable_kick(&q));
        uint16_t avail_event;
        memcpy(&avail_event, (uint8_t *) at(USED) + 4 + 8 * NUM, 2);
        CHECK_EQ(avail_event, q.last_avail_idx);
        offer(0);
        CHECK(vq_enable_kick(&q));
}

/* Guest memory in a memfd that the "front-end" shrinks after it was mapped:
 * accesses to the lost pages are SIGBUS, which must come back as -EFAULT
 * (and a broken ring) instead of killing the process. */
#define VGPA 0x40000000ull
#define VSIZE (1u << 20)

static void test_vanishing_memory(void) {
        static struct vq_elem e;
        struct vu_mem vm;
        struct vq vq;
        struct vq_writer w;
        char buf[64];
        int fd = memfd_create("guest", MFD_CLOEXEC);

        CHECK(fd >= 0);
        CHECK_OK(ftruncate(fd, VSIZE));
        uint8_t *g = mmap(NULL, VSIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        CHECK(g != MAP_FAILED);
        vm = (struct vu_mem){ .nregions = 1, .regions = { { .gpa = VGPA, .size = VSIZE, .uva = VGPA, .host = g } } };
        memset(&vq, 0, sizeof(vq));
        /* rings in the first 64 KiB, buffers far beyond */
        CHECK_OK(vq_map(&vq, &vm, NUM, VGPA, VGPA + 0x1000, VGPA + 0x2000));
        struct vq_desc d[2] = {
                { .addr = VGPA + 0x80000, .len = 64, .flags = VQ_DESC_F_NEXT, .next = 1 },
                { .addr = VGPA + 0x90000, .len = 64, .flags = VQ_DESC_F_WRITE },
        };
        memcpy(g, d, sizeof(d));
        uint16_t *avail = (uint16_t *) (g + 0x1000);
        avail[2] = 0;
        avail[1] = 1;
        CHECK_EQ(vq_pop(&vq, &e), 1);

        /* the front-end shrinks the file below the buffers */
        CHECK_OK(ftruncate(fd, 0x10000));
        CHECK_EQ(vq_elem_read(&e, buf, sizeof(buf)), -EFAULT);
        vq_writer_init(&w, &e);
        CHECK_EQ(vq_writer_put(&w, "x", 1), -EFAULT);
        /* the rings themselves are still there */
        CHECK(!vq_is_broken(&vq));
        vq_push(&vq, e.head, 0);
        CHECK_EQ(((uint16_t *) (g + 0x2000))[1], 1);

        /* ... and now below the rings */
        avail[2] = 0;
        avail[1] = 2;
        CHECK_OK(ftruncate(fd, 0));
        CHECK_EQ(vq_pop(&vq, &e), -EFAULT);
        CHECK(vq_is_broken(&vq));
        CHECK_EQ(vq_pop(&vq, &e), -EIO);
        vq_push(&vq, 0, 0);
        CHECK(!vq_should_notify(&vq));
        CHECK(!vq_enable_kick(&vq));
        struct vq t = {};
        CHECK_EQ(vq_map(&t, &vm, NUM, VGPA, VGPA + 0x1000, VGPA + 0x2000), -EFAULT);

        /* every guarded entry point, each faulting on a live ring */
        CHECK_OK(ftruncate(fd, VSIZE));
        memset(&vq, 0, sizeof(vq));
        vq.event_idx = true;
        CHECK_OK(vq_map(&vq, &vm, NUM, VGPA, VGPA + 0x1000, VGPA + 0x2000));
        CHECK_OK(ftruncate(fd, 0));
        CHECK(!vq_enable_kick(&vq));
        CHECK(vq_is_broken(&vq));
        vq.broken = false;
        vq_push(&vq, 0, 0);
        CHECK(vq_is_broken(&vq));
        vq.broken = false;
        CHECK(!vq_should_notify(&vq));
        CHECK(vq_is_broken(&vq));

        /* after the faults, the recovery points are all unwound: a ring
         * over intact memory works as before */
        CHECK_OK(ftruncate(fd, VSIZE));
        memset(&vq, 0, sizeof(vq));
        CHECK_OK(vq_map(&vq, &vm, NUM, VGPA, VGPA + 0x1000, VGPA + 0x2000));
        memcpy(g, d, sizeof(d));
        avail = (uint16_t *) (g + 0x1000);
        avail[2] = 0;
        avail[1] = (uint16_t) (vq.last_avail_idx + 1);
        CHECK_EQ(vq_pop(&vq, &e), 1);
        CHECK_EQ(vq_elem_read(&e, buf, sizeof(buf)), 64);

        /* a SIGBUS that is not in guest memory still kills the process,
         * inside a guarded access (private buffer in a shrunk file) or
         * outside one (the previous action runs) */
        for (int k = 0; k < 2; k++) {
                pid_t pid = fork();
                CHECK(pid >= 0);
                if (pid == 0) {
                        int ofd = memfd_create("other", 0);
                        if (ofd < 0 || ftruncate(ofd, 65536) < 0)
                                _exit(2);
                        uint8_t *o = mmap(NULL, 65536, PROT_READ | PROT_WRITE, MAP_SHARED, ofd, 0);
                        if (o == MAP_FAILED || ftruncate(ofd, 0) < 0)
                                _exit(2);
                        if (k == 0)
                                (void) vq_elem_read(&e, o, 64);
                        else
                                o[0] = 1;
                        _exit(0);
                }
                int status;
                CHECK_EQ(waitpid(pid, &status, 0), pid);
                /* SIGBUS; under a sanitizer, whose handler we chain to, its
                 * report and exit status */
                if (WIFSIGNALED(status))
                        CHECK_EQ(WTERMSIG(status), SIGBUS);
                else
                        CHECK(WIFEXITED(status) && WEXITSTATUS(status) != 0 && WEXITSTATUS(status) != 2);
        }

        munmap(g, VSIZE);
        close(fd);
}

int main(void) {
        RUN(test_translate);
        RUN(test_map);
        RUN(test_simple_chain);
        RUN(test_writer_segments);
        RUN(test_indirect);
        RUN(test_bad_chains);
        RUN(test_too_long);
        RUN(test_broken_ring);
        RUN(test_wraparound);
        RUN(test_event_idx);
        RUN(test_vanishing_memory);
        free(guest);
        return 0;
}
