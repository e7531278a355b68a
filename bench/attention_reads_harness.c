/* C harness for the +kv4 self-attention kernel (daemon/native/attention.c: riffd_attend_kv4) over a
   late decode step's tasks: LAYERS x ROWS x HEADS (row, head) tasks at one position, each over its
   own slots laid out as kv_cache.py's 4-bit layout (an int8 head, then 4-bit slots; a window's worth
   of slots a task, used up to the position), split over the threads in contiguous runs as the step's
   chunks are. Timed three ways, each against a plain read of the very bytes the tasks read (their
   keys, values and scales up to the position: a sum of 64-bit words, split the same way):
   - "one layer": the first layer's tasks again and again (they stay in the cores' own caches);
   - "every layer": all the tasks again and again (a step's cache alone, wherever it fits);
   - "after the weights": before each pass the threads read STREAM_MB of other memory, as a decode
     step's weights pass between one step's reads of a layer's cache and the next step's.
   Built by bench/attention_reads.py with the library's own flags and sources; timed in C, no Python
   between tasks.

   usage: attention_reads_harness THREADS REPEATS POSITION STREAM_MB
   prints one JSON object per line */

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "riffd_native.h"

#define LAYERS 24
#define ROWS 2 /* one guided stream */
#define HEADS 16
#define HEAD_DIM 64
#define WINDOW 1500 /* slots a task's cache holds (a 30 s window) */
#define INT8_HEAD 64 /* kv_cache.INT8_HEAD_POSITIONS */
#define TASKS (LAYERS * ROWS * HEADS)
#define SLOT_ROWS (WINDOW + INT8_HEAD)
#define ROW_BYTES (HEAD_DIM / 2)
#define MAX_THREADS 16

static uint8_t *keys, *values;
static uint16_t *key_scales, *value_scales;
static uint64_t *stream;
static size_t stream_words;
static int threads, position, repeats;
static pthread_barrier_t barrier;
static volatile uint64_t sink;

/* aligned_alloc wants a size that is a multiple of the alignment. */
static void *allocate(size_t alignment, size_t bytes) {
    void *made = aligned_alloc(alignment, (bytes + alignment - 1) / alignment * alignment);
    if (made == NULL) {
        fprintf(stderr, "out of memory (%zu bytes)\n", bytes);
        exit(1);
    }
    return made;
}

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Bytes of a task's slots up to `position` (its int8 head two rows a position) and of its scales. */
static size_t used_slot_bytes(void) {
    const int head = position < INT8_HEAD ? position : INT8_HEAD;
    return (size_t)(2 * head + (position - head)) * ROW_BYTES;
}
static size_t used_scale_bytes(void) {
    const int head = position < INT8_HEAD ? position : INT8_HEAD;
    return (size_t)(2 * head + (position - head)) * 2;
}

static uint64_t read_words(const void *start, size_t bytes) {
    const uint64_t *w = start;
    uint64_t a = 0, b = 0, c = 0, d = 0;
    size_t i = 0, n = bytes / 8;
    for (; i + 4 <= n; i += 4) a += w[i], b += w[i + 1], c += w[i + 2], d += w[i + 3];
    for (; i < n; i++) a += w[i];
    return a + b + c + d;
}

typedef struct {
    int id;
    int tasks; /* the first `tasks` tasks take part */
    int kernel; /* 1: attend; 0: a plain read of the same bytes */
    int flush;  /* read this thread's share of `stream` before each pass */
    double best_s;
} work;

static void *run(void *arg) {
    work *w = arg;
    const int begin = w->id * w->tasks / threads, end = (w->id + 1) * w->tasks / threads;
    float q[HEAD_DIM] __attribute__((aligned(64))), out[HEAD_DIM] __attribute__((aligned(64)));
    for (int i = 0; i < HEAD_DIM; i++) q[i] = 0.05f * (float)((i * 7) % 13 - 6);
    float *scores = allocate(64, sizeof(float) * (size_t)riffd_attention_scratch_floats(WINDOW, HEAD_DIM));
    const size_t share = stream_words / (size_t)threads;
    uint64_t total = 0;
    w->best_s = 1e9;
    for (int r = 0; r < repeats; r++) {
        if (w->flush) total += read_words(stream + (size_t)w->id * share, share * 8);
        pthread_barrier_wait(&barrier);
        const double start = now_s();
        for (int t = begin; t < end; t++) {
            const uint8_t *k = keys + (size_t)t * SLOT_ROWS * ROW_BYTES, *v = values + (size_t)t * SLOT_ROWS * ROW_BYTES;
            const uint16_t *ks = key_scales + (size_t)t * SLOT_ROWS, *vs = value_scales + (size_t)t * SLOT_ROWS;
            if (w->kernel) {
                riffd_attend_kv4(q, k, ks, v, vs, position, INT8_HEAD, HEAD_DIM, scores, out);
                total += (uint64_t)(out[0] != 0.0f);
            } else {
                total += read_words(k, used_slot_bytes()) + read_words(v, used_slot_bytes()) +
                         read_words(ks, used_scale_bytes()) + read_words(vs, used_scale_bytes());
            }
        }
        const double took = now_s() - start;
        pthread_barrier_wait(&barrier); /* a pass ends with its slowest thread: each thread's own time */
        if (took < w->best_s) w->best_s = took;
    }
    sink += total;
    free(scores);
    return NULL;
}

/* The slowest thread's best pass, in seconds. */
static double pass_s(int tasks, int kernel, int flush) {
    pthread_t ids[MAX_THREADS];
    work works[MAX_THREADS];
    for (int i = 0; i < threads; i++) {
        works[i] = (work){i, tasks, kernel, flush, 0.0};
        pthread_create(&ids[i], NULL, run, &works[i]);
    }
    double slowest = 0.0;
    for (int i = 0; i < threads; i++) {
        pthread_join(ids[i], NULL);
        if (works[i].best_s > slowest) slowest = works[i].best_s;
    }
    return slowest;
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: %s THREADS REPEATS POSITION STREAM_MB\n", argv[0]);
        return 2;
    }
    threads = atoi(argv[1]);
    repeats = atoi(argv[2]);
    position = atoi(argv[3]);
    const long stream_mb = atol(argv[4]);
    if (threads < 1 || threads > MAX_THREADS || repeats < 1 || position < 1 || position > WINDOW || stream_mb < 1) {
        fprintf(stderr, "threads 1-%d, repeats >= 1, position 1-%d, stream_mb >= 1\n", MAX_THREADS, WINDOW);
        return 2;
    }
    const size_t slot_bytes = (size_t)TASKS * SLOT_ROWS * ROW_BYTES, scale_count = (size_t)TASKS * SLOT_ROWS;
    keys = allocate(4096, slot_bytes);
    values = allocate(4096, slot_bytes);
    key_scales = allocate(4096, scale_count * 2);
    value_scales = allocate(4096, scale_count * 2);
    stream_words = (size_t)stream_mb * 1000000 / 8;
    stream = allocate(4096, stream_words * 8);
    srand(7);
    for (size_t i = 0; i < slot_bytes; i++) keys[i] = (uint8_t)rand(), values[i] = (uint8_t)rand();
    for (size_t t = 0; t < TASKS; t++) {
        uint16_t *ks = key_scales + t * SLOT_ROWS, *vs = value_scales + t * SLOT_ROWS;
        const float head_scale = 0.01f; /* the int8 head's float32 scales, two entries each */
        for (int p = 0; p < INT8_HEAD; p++) memcpy(ks + 2 * p, &head_scale, 4), memcpy(vs + 2 * p, &head_scale, 4);
        for (int p = 2 * INT8_HEAD; p < SLOT_ROWS; p++) ks[p] = vs[p] = 0x2000; /* float16 2^-7 */
    }
    for (size_t i = 0; i < stream_words; i++) stream[i] = i;
    pthread_barrier_init(&barrier, NULL, (unsigned)threads);
    const double task_bytes = 2.0 * (double)(used_slot_bytes() + used_scale_bytes());
    const struct {
        const char *name;
        int tasks, flush;
    } cases[] = {{"one layer", ROWS * HEADS, 0}, {"every layer", TASKS, 0}, {"after the weights", TASKS, 1}};
    for (int c = 0; c < 3; c++) {
        const double read_s = pass_s(cases[c].tasks, 0, cases[c].flush);
        const double kernel_s = pass_s(cases[c].tasks, 1, cases[c].flush);
        const double mb = task_bytes * cases[c].tasks / 1e6;
        printf("{\"case\": \"%s\", \"tasks\": %d, \"mb\": %.2f, \"kernel_ms\": %.4f, \"read_ms\": %.4f, "
               "\"kernel_gb_s\": %.2f, \"read_gb_s\": %.2f, \"share_of_read\": %.3f}\n",
               cases[c].name, cases[c].tasks, mb, 1e3 * kernel_s, 1e3 * read_s, mb / kernel_s / 1e3, mb / read_s / 1e3,
               read_s / kernel_s);
    }
    return sink == 42 ? 1 : 0; /* keeps the reads */
}
