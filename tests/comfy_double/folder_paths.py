"""Double of ComfyUI's folder_paths (same names and behaviour for what the pack uses)."""
import os

models_dir = os.path.join(os.environ.get("COMFY_DOUBLE_BASE", "/nonexistent-comfy"), "models")
supported_pt_extensions = {".ckpt", ".pt", ".pt2", ".bin", ".pth", ".safetensors", ".pkl", ".sft"}
folder_names_and_paths = {}


def reset(base):
    """Test helper: a fresh model tree under `base` with ComfyUI's default keys used here."""
    global models_dir
    models_dir = os.path.join(str(base), "models")
    folder_names_and_paths.clear()
    for key, sub in (("diffusion_models", ["unet", "diffusion_models"]), ("vae", ["vae"]),
                     ("text_encoders", ["text_encoders", "clip"]), ("loras", ["loras"])):
        folder_names_and_paths[key] = ([os.path.join(models_dir, s) for s in sub], set(supported_pt_extensions))


def get_input_directory():
    return os.path.join(os.path.dirname(models_dir), "input")


def add_model_folder_path(folder_name, full_folder_path, is_default=False):
    paths, exts = folder_names_and_paths.setdefault(folder_name, ([], set()))
    if full_folder_path not in paths:
        paths.insert(0, full_folder_path) if is_default else paths.append(full_folder_path)


def get_folder_paths(folder_name):
    return folder_names_and_paths[folder_name][0][:]



def get_output_directory():
    return os.path.join(os.path.dirname(models_dir), "output")


def get_save_image_path(filename_prefix, output_dir, image_width=0, image_height=0):
    """ComfyUI's rule: the prefix's folder under output_dir (never outside it), the next free counter."""
    subfolder = os.path.dirname(os.path.normpath(filename_prefix))
    filename = os.path.basename(os.path.normpath(filename_prefix))
    full_output_folder = os.path.join(output_dir, subfolder)
    if os.path.commonpath((output_dir, os.path.abspath(full_output_folder))) != output_dir:
        raise Exception("**** ERROR: Saving image outside the output folder is not allowed.")
    os.makedirs(full_output_folder, exist_ok=True)
    taken = [int(f[len(filename) + 1:].split("_")[0]) for f in os.listdir(full_output_folder)
             if f.startswith(filename + "_") and f[len(filename) + 1:].split("_")[0].isdigit()]
    return full_output_folder, filename, max(taken, default=0) + 1, subfolder, filename_prefix
