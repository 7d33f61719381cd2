#pragma once
// The pretraining methods by name, and the defaults of each training stage: the one place
// where SimCLR and MICLe differ, and where the recipes' starting values are written.
//
//   simclr  positives: two augmentations of one image (contrastive::augmented_views)
//   micle   positives: two different images of one patient's (or study's) bag
//           (contrastive::multi_instance; a bag of one image falls back to SimCLR's pair)
//
// Both use NT-Xent (contrastive::nt_xent) and both leave a patient's other images out of
// its negatives: with several images per patient, another image of the same patient is not
// a negative example of it (the pair strategies give each view its patient id as group).
// Adding a method is a row here and, if it needs one, its pair strategy or loss.
#include <array>
#include <string>
#include <string_view>

#include "micle/core/error.hpp"

namespace micle::train {

struct method {
    std::string_view name;
    bool pairs_from_bags;      ///< positives from two images of a bag (MICLe), else two views of one image
    bool mask_same_patient;    ///< NT-Xent drops views of the anchor's patient other than its positive
    std::string_view positives;  ///< for logs and usage text
};

inline constexpr std::array<method, 2> methods{{
    {"simclr", false, true, "two augmentations of one image"},
    {"micle", true, true, "two images of one patient (or study)"},
}};

/// The method `name` names; an unknown name is a value_error listing the known ones.
inline const method& find_method(std::string_view name, const char* who) {
    for (const auto& m : methods)
        if (m.name == name) return m;
    std::string known;
    for (std::size_t i = 0; i < methods.size(); ++i)
        known += std::string(i == 0 ? "" : (i + 1 == methods.size() ? " or " : ", ")) + std::string(methods[i].name);
    throw value_error(micle::detail::cat(who, ": pairs must be ", known, ", not '", name, "'"));
}

/// A training stage's optimizer defaults: the base learning rate of LARS and SGD (scaled
/// by batch / 256) and whether LARS is offered. AdamW's 1e-3 and the weight decays (LARS
/// 1e-6, SGD 1e-4, AdamW 1e-2) are the same in both stages (recipes.hpp, with_optimizer).
struct stage_defaults {
    double base_lr;
    bool lars_allowed;
};
inline constexpr stage_defaults pretraining{.base_lr = 0.3, .lars_allowed = true};   // SimCLR's
inline constexpr stage_defaults finetuning{.base_lr = 0.1, .lars_allowed = false};

}  // namespace micle::train
