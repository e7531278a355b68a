/* pool.c's parallel regions under stalls placed where the scheduler can deschedule a thread.

   Built with pool.c and -DRIFFD_POOL_TEST, which makes pool.c call riffd_pool_test_pause (below) at
   the points of its protocol where a worker or the caller may lose its CPU: after reading the ticket,
   after reading the region's fields, after running a chunk, and while the caller publishes a region.
   Each pause spins for a random while (some of them for nothing), so that a worker late by every
   amount meets the caller at every point of its next region, as a descheduled worker on a busy
   2-core machine does some time in millions of regions.

   Regions of different sizes and grains follow each other (as a decode step's int8 products, 16
   chunks each, and its attention, one chunk per row and head), each with its own context on the
   caller's stack. Every chunk checks that it runs with its own region's function and context, while
   its caller is still inside riffd_parallel; after each call the caller checks that every item ran
   exactly once and that no chunk of its region still runs.

   Usage: pool_stress SECONDS THREADS. Prints "pool: N regions, M faults" last; exits 1 on a fault. */

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "riffd_native.h"

#define MAX_ITEMS 96

typedef struct {
    int tag; /* which of the two functions this region runs */
    atomic_int live; /* 1 while the caller is inside riffd_parallel */
    atomic_int running; /* chunks of this region running now */
    atomic_int ran[MAX_ITEMS]; /* times each item ran */
} region;

static atomic_long faults;
static _Thread_local uint64_t seed;

static uint64_t next_random(void) {
    if (!seed) seed = (uint64_t)(uintptr_t)&seed | 1;
    seed ^= seed << 13;
    seed ^= seed >> 7;
    seed ^= seed << 17;
    return seed;
}

static int64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static void spin_ns(int64_t ns) {
    int64_t until = now_ns() + ns;
    while (now_ns() < until) {
    }
}

/* Called by pool.c at point `where` (0: a worker read the ticket, 1: it read the region's fields,
   2: it ran a chunk and has not counted it yet, 3: the caller is writing its region's fields); `id`
   0 is the caller. A pause spins for up to a couple of microseconds, about the time a caller takes
   from one region's end to the next one's start, or not at all. */
void riffd_pool_test_pause(int id, int where) {
    (void)id;
    static const uint64_t odds[] = {2, 4, 4, 2};       /* pause one time in this many */
    static const int64_t longest_ns[] = {2000, 2000, 2000, 1000};
    uint64_t r = next_random();
    if (r % odds[where] == 0) spin_ns((int64_t)((r >> 16) % (uint64_t)longest_ns[where]));
}

static void fault(const char *what) {
    if (atomic_fetch_add(&faults, 1) < 10) fprintf(stderr, "pool fault: %s\n", what);
}

static void chunk(region *g, int tag, int64_t begin, int64_t end) {
    if (g->tag != tag) fault("a chunk ran with another region's function or context");
    if (!atomic_load(&g->live)) fault("a chunk started after its caller returned");
    atomic_fetch_add(&g->running, 1);
    for (int64_t i = begin; i < end; i++) {
        if (i < 0 || i >= MAX_ITEMS) {
            fault("an item out of its region's range");
            continue;
        }
        atomic_fetch_add(&g->ran[i], 1);
        spin_ns(20);
    }
    if (!atomic_load(&g->live)) fault("a chunk was still running after its caller returned");
    atomic_fetch_sub(&g->running, 1);
}

static void chunk_a(void *ctx, int64_t begin, int64_t end) { chunk(ctx, 1, begin, end); }
static void chunk_b(void *ctx, int64_t begin, int64_t end) { chunk(ctx, 2, begin, end); }

static void one_region(int64_t count, int64_t grain, int threads, int tag) {
    region g = {.tag = tag};
    atomic_store(&g.live, 1);
    riffd_parallel(count, grain, threads, tag == 1 ? chunk_a : chunk_b, &g);
    if (atomic_load(&g.running) != 0) fault("riffd_parallel returned while a chunk of its region still ran");
    for (int64_t i = 0; i < count; i++)
        if (atomic_load(&g.ran[i]) != 1) {
            fault("an item ran other than once");
            break;
        }
    atomic_store(&g.live, 0);
    /* The next region's context lands on the same stack bytes: scrub this one first, so a late
       chunk reading it sees neither tag. */
    g.tag = 0;
}

int main(int argc, char **argv) {
    double seconds = argc > 1 ? atof(argv[1]) : 5.0;
    int threads = argc > 2 ? atoi(argv[2]) : 2;
    static const int64_t counts[] = {16, 32, 12, 40, 96, 3, 17};
    static const int64_t grains[] = {0, 1, 0, 0, 1, 1, 0};
    const int kinds = (int)(sizeof counts / sizeof counts[0]);
    const int64_t until = now_ns() + (int64_t)(seconds * 1e9);
    long r = 0;
    for (; atomic_load(&faults) == 0 && (r % 256 || now_ns() < until); r++) { /* stops at the first fault */
        int kind = (int)(r % kinds);
        one_region(counts[kind], grains[kind], threads, (int)(r & 1) + 1);
    }
    long found = atomic_load(&faults);
    printf("pool: %ld regions, %ld faults\n", r, found);
    return found ? 1 : 0;
}
