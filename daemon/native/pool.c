/* riffd's own worker threads for the kernels' parallel loops.

   The kernels used OpenMP before. Inside a process that has loaded torch, libgomp is torch's copy,
   and a thread that starts a parallel region waits at the closing barrier by spinning (some 300 000
   iterations when libgomp manages no more threads than CPUs, which is the case on the process's main
   thread). On a 2-core machine shared with other work the thread it waits for is often not running,
   so each of the step's ~70 regions could cost a scheduler time slice: measured, an int8 matvec on
   two threads ran 15 times slower called from the main thread than from any other (where libgomp
   throttles its spinning), and the whole decode step 10 to 25 times slower. Here the rules are ours,
   whatever thread calls and whatever torch's settings:

   - a worker spins briefly (SPIN_NS) for the next region, then sleeps on a condition variable, so
     between decode steps (Python's sampling) it costs nothing;
   - the work is handed out in chunks from one counter, and the calling thread takes chunks too: a
     worker the scheduler has not run yet never holds the caller up, the caller does its share;
   - the caller waits only for chunks already started (microseconds).

   One region at a time: a second thread that calls while the pool is busy runs its loop alone
   (correct, never blocked, and on a 2-core machine as fast as sharing). The ticket packs the
   region's generation with the next chunk's index, so a late worker can never take a chunk of a
   region it did not see start: its compare-and-swap fails once the generation moved on. A caller
   closes the last region's ticket (index CLOSED, same generation) before it writes its own region's
   fields: without that, a worker that read the last ticket and then lost its CPU could read the new
   fields while that ticket still stood, claim a chunk of the new region under the old generation
   and run it twice, and its count of it let the caller return while another chunk still ran (seen
   once in a benchmark as a batched job's codes differing from alone; tests/native/pool_stress.c
   reproduces it within seconds). Every atomic here is sequentially consistent (the few per region
   cost nothing next to the work), which is what makes a worker's read of the region's fields and its
   claim one consistent view: a claim that succeeds came before the close, so before the fields
   changed. */

#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#include "riffd_native.h"

#ifdef RIFFD_POOL_TEST
/* tests/native/pool_stress.c: stalls a thread where the scheduler may take its CPU away. */
void riffd_pool_test_pause(int id, int where);
#define PAUSE(id, where) riffd_pool_test_pause(id, where)
#else
#define PAUSE(id, where) ((void)0)
#endif

/* With -DRIFFD_STEP_PROFILE (bench.step_account): how many regions went to the pool, the caller's
   nanoseconds waiting at their ends for chunks still running on workers, and the items the caller
   and the workers each ran (a worker that was not running when a region began leaves its share to
   the caller); riffd_pool_profile(out, count) copies them as doubles and clears them. */
#ifdef RIFFD_STEP_PROFILE
enum { POOL_REGIONS, POOL_WAIT_NS, POOL_CALLER_ITEMS, POOL_WORKER_ITEMS, POOL_COUNTERS };
static _Atomic int64_t pool_counters[POOL_COUNTERS];
#define COUNT(which, amount) atomic_fetch_add(&pool_counters[which], (amount))
int64_t riffd_pool_profile(double *out, int64_t count) {
    for (int64_t i = 0; i < count && i < POOL_COUNTERS; i++) out[i] = (double)atomic_exchange(&pool_counters[i], 0);
    return POOL_COUNTERS;
}
#else
#define COUNT(which, amount) ((void)0)
int64_t riffd_pool_profile(double *out, int64_t count) {
    (void)out, (void)count;
    return 0;
}
#endif

#define MAX_WORKERS 63
#define CLOSED UINT32_MAX /* a ticket's chunk index while its caller writes the next region's fields */
#define SPIN_NS 50000 /* a layer's regions follow each other within microseconds: stay awake that long */

static struct {
    pthread_mutex_t lock; /* the sleepers' */
    pthread_cond_t wake;
    _Atomic uint64_t ticket; /* generation << 32 | index of the next chunk to hand out */
    _Atomic int64_t done;    /* items finished in the current generation */
    _Atomic int sleepers;
    atomic_flag busy; /* a caller owns the pool */
    /* The current region, written by its caller before it publishes the generation. */
    _Atomic(riffd_range_fn) fn;
    _Atomic(void *) ctx;
    _Atomic int64_t count, grain;
    _Atomic int threads;
    int workers; /* started; changed only by the caller that owns the pool */
} pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0, ATOMIC_FLAG_INIT, NULL, NULL, 0, 0, 0, 0};

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static int64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static inline uint32_t generation(uint64_t ticket) { return (uint32_t)(ticket >> 32); }

/* Take chunks of generation `gen` until none are left; worker `id` (0: the caller) joins only if the
   region asked for more than `id` threads. */
static void work(uint32_t gen, int id) {
    for (;;) {
        uint64_t ticket = atomic_load(&pool.ticket);
        if (generation(ticket) != gen || (uint32_t)ticket == CLOSED) return;
        PAUSE(id, 0);
        riffd_range_fn fn = atomic_load(&pool.fn);
        void *ctx = atomic_load(&pool.ctx);
        int64_t count = atomic_load(&pool.count), grain = atomic_load(&pool.grain);
        if (id >= atomic_load(&pool.threads)) return;
        int64_t begin = (int64_t)(uint32_t)ticket * grain;
        if (begin >= count) return;
        PAUSE(id, 1);
        if (!atomic_compare_exchange_strong(&pool.ticket, &ticket, ticket + 1)) continue;
        int64_t end = begin + grain < count ? begin + grain : count;
        fn(ctx, begin, end);
        COUNT(id ? POOL_WORKER_ITEMS : POOL_CALLER_ITEMS, end - begin);
        PAUSE(id, 2);
        atomic_fetch_add(&pool.done, end - begin);
    }
}

static void *worker(void *arg) {
    uintptr_t packed = (uintptr_t)arg;
    int id = (int)(packed & 0xff);
    uint32_t seen = (uint32_t)(packed >> 8); /* the generation when this worker was started */
    for (;;) {
        int64_t deadline = now_ns() + SPIN_NS;
        uint32_t gen = generation(atomic_load(&pool.ticket));
        for (int spins = 0; gen == seen; spins++) {
            cpu_relax();
            if ((spins & 255) == 255 && now_ns() > deadline) break;
            gen = generation(atomic_load(&pool.ticket));
        }
        if (gen == seen) {
            pthread_mutex_lock(&pool.lock);
            atomic_fetch_add(&pool.sleepers, 1);
            while ((gen = generation(atomic_load(&pool.ticket))) == seen) pthread_cond_wait(&pool.wake, &pool.lock);
            atomic_fetch_sub(&pool.sleepers, 1);
            pthread_mutex_unlock(&pool.lock);
        }
        seen = gen;
        work(gen, id);
    }
    return NULL;
}

/* Start workers up to `wanted` (the caller owns the pool); fewer if the system refuses threads. */
static void start_workers(int wanted, uint32_t gen) {
    if (wanted > MAX_WORKERS) wanted = MAX_WORKERS;
    if (pool.workers >= wanted) return;
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old); /* signals stay with the application's threads */
    while (pool.workers < wanted) {
        pthread_t thread;
        uintptr_t arg = (uintptr_t)(pool.workers + 1) | ((uintptr_t)gen << 8);
        if (pthread_create(&thread, NULL, worker, (void *)arg) != 0) break;
        pthread_detach(thread);
        pool.workers++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

/* A forked child has none of the parent's workers. */
static void after_fork_in_child(void) {
    pthread_mutex_init(&pool.lock, NULL);
    pthread_cond_init(&pool.wake, NULL);
    atomic_store(&pool.sleepers, 0);
    atomic_flag_clear(&pool.busy);
    pool.workers = 0;
}

__attribute__((constructor)) static void register_fork_handler(void) {
    pthread_atfork(NULL, NULL, after_fork_in_child);
}

void riffd_parallel(int64_t count, int64_t grain, int threads, riffd_range_fn fn, void *ctx) {
    if (count <= 0) return;
    if (grain <= 0) { /* a few chunks per thread: enough to even out a slow or late one */
        grain = count / ((int64_t)(threads > 1 ? threads : 1) * 8);
        if (grain < 1) grain = 1;
    }
    if (threads <= 1 || count <= grain || (count + grain - 1) / grain >= CLOSED ||
        atomic_flag_test_and_set(&pool.busy)) {
        fn(ctx, 0, count);
        return;
    }
    uint64_t last = atomic_load(&pool.ticket);
    atomic_store(&pool.ticket, last | CLOSED); /* no late claim on the last region from here on */
    uint32_t gen = generation(last) + 1;
    start_workers(threads - 1, gen - 1);
    atomic_store(&pool.fn, fn);
    atomic_store(&pool.ctx, ctx);
    atomic_store(&pool.count, count);
    atomic_store(&pool.grain, grain);
    atomic_store(&pool.threads, threads);
    atomic_store(&pool.done, 0);
    PAUSE(0, 3);
    atomic_store(&pool.ticket, (uint64_t)gen << 32);
    if (atomic_load(&pool.sleepers) > 0) {
        pthread_mutex_lock(&pool.lock);
        pthread_cond_broadcast(&pool.wake);
        pthread_mutex_unlock(&pool.lock);
    }
    work(gen, 0);
    /* Every chunk is handed out; wait for those still running on workers. */
    COUNT(POOL_REGIONS, 1);
#ifdef RIFFD_STEP_PROFILE
    const int64_t waiting_since = now_ns();
#endif
    for (int spins = 1; atomic_load(&pool.done) < count; spins++) {
        cpu_relax();
        if (spins % 1024 == 0) sched_yield(); /* the worker may be waiting for this very CPU */
    }
    COUNT(POOL_WAIT_NS, now_ns() - waiting_since);
    atomic_flag_clear(&pool.busy);
}
