#pragma once
// CSV manifests: one image per line, header-driven.
//
//   path,patient_id,label,split             multi-class: `label` (or `class`) holds
//   images/p1_a.png,P001,pneumonia,train     integers 0..K-1 or names (sorted to indices)
//
//   path,patient_id,atelectasis,effusion     multi-label: without a label column, every
//   scans/p2.dcm,P002,1,0                    other column is a 0/1 label
//
// Columns: `path` (or `image`, `file`; relative to the manifest's directory), `patient_id`
// (or `patient`; optional - without it each image is its own patient), an optional `split`
// (train / val / test). Fields may be double-quoted ("" escapes a quote). Images are PNG,
// JPEG or DICOM, chosen by extension (.png, .jpg/.jpeg, .dcm/.dicom) or the DICOM magic.
// A line longer than read_options::max_line_bytes (1 MiB) is an error, not an allocation.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <system_error>
#include <vector>

#include "micle/data/dataset.hpp"
#include "micle/data/decode.hpp"
#include "micle/data/dicom.hpp"

namespace micle::data {

/// How a manifest's images are read: DICOM windowing and the per-image limits.
struct read_options {
    dicom_options dicom;
    decode_limits limits;
    std::size_t max_line_bytes = default_max_line_bytes;  ///< longest manifest line
};

/// std::getline that stops with an error naming the line once it passes `max` bytes,
/// so a manifest without newlines cannot make the reader hold the whole stream as one line.
inline bool getline_bounded(std::istream& in, std::string& line, std::size_t max, const std::string& file,
                            std::size_t line_no) {
    line.clear();
    std::streambuf* sb = in.rdbuf();
    for (;;) {
        const auto c = sb->sbumpc();
        if (c == std::char_traits<char>::eof()) {
            if (line.empty()) {
                in.setstate(std::ios::eofbit | std::ios::failbit);
                return false;
            }
            in.setstate(std::ios::eofbit);
            return true;
        }
        if (c == '\n') return true;
        if (line.size() >= max)
            throw data_error(micle::detail::cat(file, ":", line_no, ": line is longer than ", max,
                                                " bytes (not a manifest? raise read_options::max_line_bytes)"));
        line.push_back(char(c));
    }
}

/// Splits one CSV line; `where` names file and line for errors.
inline std::vector<std::string> split_csv_line(const std::string& line, const std::string& where) {
    std::vector<std::string> out;
    std::vector<bool> kept;  // per field: quoted, so its blanks are its own
    std::string field;
    bool quoted = false, was_quoted = false;
    for (std::size_t i = 0; i < line.size(); ++i) {
        const char c = line[i];
        if (quoted) {
            if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
                field += '"';
                ++i;
            } else if (c == '"') {
                quoted = false;
            } else {
                field += c;
            }
        } else if (c == '"') {
            if (!field.empty() && field.find_first_not_of(" \t") != std::string::npos)
                throw data_error(micle::detail::cat(where, ": a quote inside an unquoted field"));
            field.clear();
            quoted = was_quoted = true;
        } else if (c == ',') {
            out.push_back(field);
            kept.push_back(was_quoted);
            field.clear();
            was_quoted = false;
        } else if (c != '\r') {
            if (was_quoted && c != ' ' && c != '\t') throw data_error(micle::detail::cat(where, ": text after a closing quote"));
            if (!was_quoted) field += c;
        }
    }
    if (quoted) throw data_error(micle::detail::cat(where, ": unterminated quoted field"));
    out.push_back(field);
    kept.push_back(was_quoted);
    for (std::size_t k = 0; k < out.size(); ++k) {  // trim unquoted padding
        if (kept[k]) continue;
        auto& f = out[k];
        const auto b = f.find_first_not_of(" \t"), e = f.find_last_not_of(" \t");
        f = b == std::string::npos ? std::string() : f.substr(b, e - b + 1);
    }
    return out;
}

/// Decodes one image file by its extension (or DICOM magic), as `plan` allows.
inline source_image decode_image_source(const std::filesystem::path& path, const read_options& opt = {},
                                        const decode_plan& plan = {}) {
    std::string ext = path.extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return char(std::tolower(c)); });
    if (ext == ".dcm" || ext == ".dicom") return decode_dicom_source(path, opt.dicom, opt.limits);
    const auto bytes = read_file(path);
    if (ext == ".png") return decode_png_source(bytes.data(), bytes.size(), path.string(), opt.limits, plan);
    if (ext == ".jpg" || ext == ".jpeg") return decode_jpeg_source(bytes.data(), bytes.size(), path.string(), opt.limits, plan);
    if (bytes.size() > 132 && std::equal(bytes.begin() + 128, bytes.begin() + 132, "DICM"))
        return decode_dicom_source(path, opt.dicom, opt.limits);
    throw data_error(micle::detail::cat(path.string(), ": unknown image type '", ext, "' (PNG, JPEG or DICOM expected)"));
}

/// Decodes one whole image file into planar floats.
inline image decode_image_file(const std::filesystem::path& path, const read_options& opt = {}) {
    return to_image(decode_image_source(path, opt));
}

/// Parses a manifest from a stream; image paths are relative to `base`, `file` names the
/// manifest in errors. Every listed image must exist.
inline dataset parse_csv_manifest(std::istream& in, const std::filesystem::path& base, const std::string& file,
                                  const read_options& opt = {}) {
    std::string line;
    std::size_t line_no = 0;
    std::vector<std::string> header;
    while (header.empty() && getline_bounded(in, line, opt.max_line_bytes, file, line_no + 1)) {
        ++line_no;
        if (line.find_first_not_of(" \t\r") != std::string::npos) header = split_csv_line(line, file + ":" + std::to_string(line_no));
    }
    if (header.empty()) throw data_error(micle::detail::cat(file, ": empty manifest (no header line)"));
    auto column = [&](std::initializer_list<const char*> names) -> int {
        for (std::size_t i = 0; i < header.size(); ++i)
            for (const char* n : names)
                if (header[i] == n) return int(i);
        return -1;
    };
    const int path_col = column({"path", "image", "file"}), patient_col = column({"patient_id", "patient"}),
              split_col = column({"split"}), label_col = column({"label", "class"});
    if (path_col < 0) throw data_error(micle::detail::cat(file, ":", line_no, ": no path column (path, image or file)"));
    std::vector<int> label_cols;
    if (label_col < 0)
        for (int i = 0; i < int(header.size()); ++i)
            if (i != path_col && i != patient_col && i != split_col) label_cols.push_back(i);
    if (label_col < 0 && label_cols.empty())
        throw data_error(micle::detail::cat(file, ":", line_no, ": no label column (label, class, or 0/1 label columns)"));

    dataset d;
    d.source = file;
    d.task = label_col >= 0 ? task_kind::multiclass : task_kind::multilabel;
    std::vector<std::string> raw_labels;
    std::map<std::string, std::int64_t> patient_ids;
    auto paths = std::make_shared<std::vector<std::filesystem::path>>();
    while (getline_bounded(in, line, opt.max_line_bytes, file, line_no + 1)) {
        ++line_no;
        if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
        const std::string where = file + ":" + std::to_string(line_no);
        const auto f = split_csv_line(line, where);
        if (f.size() != header.size())
            throw data_error(micle::detail::cat(where, ": ", f.size(), " fields, the header has ", header.size()));
        const std::filesystem::path p = std::filesystem::path(f[std::size_t(path_col)]).is_absolute()
                                            ? std::filesystem::path(f[std::size_t(path_col)])
                                            : base / f[std::size_t(path_col)];
        if (f[std::size_t(path_col)].empty()) throw data_error(micle::detail::cat(where, ": empty path"));
        std::error_code ec;  // a path the system cannot look up (too long, say) is this line's error
        if (!std::filesystem::exists(p, ec))
            throw data_error(micle::detail::cat(where, ": image ", p, ec ? " cannot be looked up: " + ec.message() : std::string(" does not exist")));
        paths->push_back(p);
        d.names.push_back(where + " (" + p.string() + ")");
        const std::string patient = patient_col >= 0 ? f[std::size_t(patient_col)] : micle::detail::cat("#", line_no);
        if (patient.empty()) throw data_error(micle::detail::cat(where, ": empty patient id"));
        d.patients.push_back(patient_ids.emplace(patient, std::int64_t(patient_ids.size())).first->second);
        if (split_col >= 0) {
            const auto& s = f[std::size_t(split_col)];
            if (s != "train" && s != "val" && s != "test")
                throw data_error(micle::detail::cat(where, ": split '", s, "' is not train, val or test"));
            d.splits.push_back(s);
        }
        if (label_col >= 0) {
            if (f[std::size_t(label_col)].empty()) throw data_error(micle::detail::cat(where, ": empty label"));
            raw_labels.push_back(f[std::size_t(label_col)]);
        } else {
            for (int c : label_cols) {
                const auto& v = f[std::size_t(c)];
                if (v != "0" && v != "1")
                    throw data_error(micle::detail::cat(where, ": label column '", header[std::size_t(c)], "' has '", v,
                                                        "' (0 or 1 expected)"));
                d.targets.push_back(v == "1" ? 1.0f : 0.0f);
            }
        }
    }
    if (d.patients.empty()) throw data_error(micle::detail::cat(file, ": no images listed"));
    if (label_col >= 0) {
        const bool numeric = std::all_of(raw_labels.begin(), raw_labels.end(), [](const std::string& s) {
            return !s.empty() && s.size() < 7 && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
        });
        if (numeric) {
            int mx = 0;
            for (const auto& s : raw_labels) {
                d.labels.push_back(std::stoi(s));
                mx = std::max(mx, d.labels.back());
            }
            d.num_classes = mx + 1;
            for (int k = 0; k <= mx; ++k) d.class_names.push_back(std::to_string(k));
        } else {
            const std::set<std::string> names(raw_labels.begin(), raw_labels.end());
            d.class_names.assign(names.begin(), names.end());
            for (const auto& s : raw_labels)
                d.labels.push_back(int(std::lower_bound(d.class_names.begin(), d.class_names.end(), s) - d.class_names.begin()));
            d.num_classes = std::int64_t(d.class_names.size());
        }
    } else {
        d.num_classes = std::int64_t(label_cols.size());
        for (int c : label_cols) d.class_names.push_back(header[std::size_t(c)]);
    }
    d.decode = [paths, opt](std::int64_t i, const decode_plan& plan) {
        return decode_image_source((*paths)[std::size_t(i)], opt, plan);
    };
    d.validate();
    return d;
}

inline dataset read_csv_manifest(const std::filesystem::path& manifest, const read_options& opt = {}) {
    std::ifstream in(manifest);
    if (!in) throw data_error(micle::detail::cat("cannot open manifest ", manifest));
    return parse_csv_manifest(in, manifest.parent_path(), manifest.string(), opt);
}

}  // namespace micle::data
