/* The structs' sizes and field offsets as this compiler lays them out, so the ctypes mirror in
   decoder_step.py can check itself at load: a field added, removed or moved on one side only
   would otherwise have the C code read the wrong pointer. */

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "riffd_native.h"

#define FIELD(type, field) {#type, #field, (int64_t)offsetof(type, field)}
#define SIZE(type) {#type, NULL, (int64_t)sizeof(type)}

static const struct {
    const char *type, *field; /* field NULL: the struct's size */
    int64_t value;
} layout[] = {
    SIZE(riffd_int8), FIELD(riffd_int8, packed), FIELD(riffd_int8, row_sums), FIELD(riffd_int8, scales),
    FIELD(riffd_int8, rows), FIELD(riffd_int8, cols), FIELD(riffd_int8, int4_group), FIELD(riffd_int8, act8),
    SIZE(riffd_norm), FIELD(riffd_norm, weight), FIELD(riffd_norm, bias),
    SIZE(riffd_layer_weights), FIELD(riffd_layer_weights, self_norm), FIELD(riffd_layer_weights, qkv),
    FIELD(riffd_layer_weights, self_out), FIELD(riffd_layer_weights, cross_norm), FIELD(riffd_layer_weights, cross_q),
    FIELD(riffd_layer_weights, cross_out), FIELD(riffd_layer_weights, ffn_norm), FIELD(riffd_layer_weights, fc1),
    FIELD(riffd_layer_weights, fc2),
    SIZE(riffd_model), FIELD(riffd_model, hidden), FIELD(riffd_model, heads), FIELD(riffd_model, head_dim),
    FIELD(riffd_model, ffn), FIELD(riffd_model, layers), FIELD(riffd_model, eps), FIELD(riffd_model, layer),
    FIELD(riffd_model, final_norm), FIELD(riffd_model, lm_heads),
    SIZE(riffd_row_cache), FIELD(riffd_row_cache, keys), FIELD(riffd_row_cache, values),
    FIELD(riffd_row_cache, key_scales), FIELD(riffd_row_cache, value_scales), FIELD(riffd_row_cache, cross_keys),
    FIELD(riffd_row_cache, cross_values), FIELD(riffd_row_cache, folded_scores), FIELD(riffd_row_cache, folded_mix),
    SIZE(riffd_row), FIELD(riffd_row, layer), FIELD(riffd_row, cross_mask), FIELD(riffd_row, position),
    FIELD(riffd_row, max_positions), FIELD(riffd_row, cross_len), FIELD(riffd_row, kv_bits), FIELD(riffd_row, kv_int8_positions),
    SIZE(riffd_layer), FIELD(riffd_layer, self_norm), FIELD(riffd_layer, qkv), FIELD(riffd_layer, self_out),
    FIELD(riffd_layer, cross_norm), FIELD(riffd_layer, cross_q), FIELD(riffd_layer, cross_out),
    FIELD(riffd_layer, ffn_norm), FIELD(riffd_layer, fc1), FIELD(riffd_layer, fc2), FIELD(riffd_layer, keys),
    FIELD(riffd_layer, values), FIELD(riffd_layer, key_scales), FIELD(riffd_layer, value_scales),
    FIELD(riffd_layer, cross_keys), FIELD(riffd_layer, cross_values),
    SIZE(riffd_embedding), FIELD(riffd_embedding, tables), FIELD(riffd_embedding, positions),
    FIELD(riffd_embedding, books), FIELD(riffd_embedding, codes_per_book), FIELD(riffd_embedding, position_count),
    SIZE(riffd_feed), FIELD(riffd_feed, codes), FIELD(riffd_feed, prompts), FIELD(riffd_feed, rows),
    FIELD(riffd_feed, position),
    SIZE(riffd_draw), FIELD(riffd_draw, logits), FIELD(riffd_draw, state), FIELD(riffd_draw, scores),
    FIELD(riffd_draw, noise), FIELD(riffd_draw, bits), FIELD(riffd_draw, work), FIELD(riffd_draw, codes),
    FIELD(riffd_draw, rows), FIELD(riffd_draw, guided), FIELD(riffd_draw, top_k), FIELD(riffd_draw, guidance),
    FIELD(riffd_draw, temperature), FIELD(riffd_draw, undecided),
    SIZE(riffd_decoder), FIELD(riffd_decoder, batch), FIELD(riffd_decoder, hidden), FIELD(riffd_decoder, heads),
    FIELD(riffd_decoder, head_dim), FIELD(riffd_decoder, ffn), FIELD(riffd_decoder, max_positions),
    FIELD(riffd_decoder, cross_len), FIELD(riffd_decoder, layers), FIELD(riffd_decoder, eps),
    FIELD(riffd_decoder, cross_mask), FIELD(riffd_decoder, layer), FIELD(riffd_decoder, final_norm),
    FIELD(riffd_decoder, lm_heads), FIELD(riffd_decoder, scratch), FIELD(riffd_decoder, threads),
};

static int64_t look_up(const char *type, const char *field) {
    for (size_t i = 0; i < sizeof layout / sizeof layout[0]; i++)
        if (!strcmp(layout[i].type, type) && (field ? layout[i].field && !strcmp(layout[i].field, field) : !layout[i].field))
            return layout[i].value;
    return -1;
}

/* sizeof(type), or -1 for a struct this library does not know. */
int64_t riffd_struct_size(const char *type) { return look_up(type, NULL); }

/* offsetof(type, field), or -1 for one this library does not know. */
int64_t riffd_field_offset(const char *type, const char *field) { return look_up(type, field); }
